"""How fast can PostgreSQL alone write what an import writes? No Python per row.

    .venv/bin/python bench/import_support/server_floor.py [--batches 20]

Runs the SQL that bench/README.md's proposal gives ``batch_write_sql`` and the two
receivers, on batches of 5,000 rows that the server generates itself (``generate_series``
into the temporary table, instead of COPY from Python), each batch one transaction, in
four variants, each on a fresh copy of a migrated database:

- ``all``: profile, subscription, ``Profile.subscriptions`` row and activity row (what
  Signalpost writes for each imported subscriber);
- ``all, no redundant indexes``: the same without the four indexes that a composite index
  covers (``profile_id`` and ``newsletter_id`` on subscriptions, ``profile_id`` on the M2M
  and activity tables). Since 1ef6315 the schema has none but the M2M one, so ``all``
  already lacks the other three;
- ``profile + subscription``: two rows per subscriber, as listmonk writes (subscriber and
  subscriber_lists);
- ``profile + subscription, no redundant indexes``.

Prints rows a second and µs a row per statement and for the commit (where the deferred
foreign-key checks run). Creates ``signalpost_bench_import_floor_<pid>`` (and a template)
on ``BENCH_PG_URL`` and drops them at the end.
"""

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import make_conninfo

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BATCH = 5000
REDUNDANT = [
    "newsletters_subscription_profile_id_e909e393",
    "newsletters_subscription_newsletter_id_fb93411b",
    "accounts_profile_subscriptions_profile_id_4a9b28b7",
    "activity_activity_profile_id_ded7c90b",
]
VARIANTS = [
    ("all", True, False),
    ("all, no redundant indexes", True, True),
    ("profile + subscription", False, False),
    ("profile + subscription, no redundant indexes", False, True),
]

TEMP = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS signalpost_import (email text, name text, "
    "consent_at timestamptz, consent_ip inet) ON COMMIT DELETE ROWS"
)
FILL = (
    "INSERT INTO signalpost_import SELECT 'floor' || g || '@example.com', 'Anna Smith', "
    "NULL, NULL FROM generate_series(%s, %s) g"
)
PROFILES = (
    "INSERT INTO accounts_profile (email, name, attributes, soft_bounce_count, created_at, "
    "updated_at) SELECT email, name, '{}', 0, now(), now() FROM signalpost_import WHERE true "
    "ON CONFLICT DO NOTHING"
)
SUBSCRIPTIONS = (
    "INSERT INTO newsletters_subscription (profile_id, newsletter_id, status, source, "
    "created_at, subscribed_at, requested_at, unsubscribe_reason, consent_at, consent_ip, "
    "consent_user_agent) SELECT i.profile_id, %s, 'active', 'import', now(), now(), NULL, '', "
    "COALESCE(i.consent_at, now()), i.consent_ip, '' FROM (SELECT (SELECT p.id FROM "
    "accounts_profile p WHERE lower(p.email) = i.email) AS profile_id, i.consent_at, "
    "i.consent_ip FROM signalpost_import i OFFSET 0) i WHERE i.profile_id IS NOT NULL "
    "ON CONFLICT DO NOTHING RETURNING id"
)
BATCH_CTE = (
    "WITH batch AS MATERIALIZED (SELECT profile_id, status FROM newsletters_subscription "
    "WHERE id = ANY(%s)) "
)
M2M = (
    BATCH_CTE + "INSERT INTO accounts_profile_subscriptions (profile_id, newsletter_id) "
    "SELECT profile_id, %s FROM batch WHERE status = 'active' ON CONFLICT DO NOTHING"
)
ACTIVITY = (
    BATCH_CTE + "INSERT INTO activity_activity (profile_id, event, newsletter_id, detail, "
    "created_at) SELECT profile_id, 'imported', %s, jsonb_build_object('source', "
    "'import'::text, 'status', status), now() FROM batch"
)


def connect(dbname, **kwargs):
    return psycopg.connect(make_conninfo(PG_URL, dbname=dbname), **kwargs)


def url_for(dbname):
    return urlsplit(PG_URL)._replace(path=f"/{dbname}").geturl()


def prepare(template):
    env = {**os.environ, "DATABASE_URL": url_for(template), "DEBUG": "0"}
    for argv in (
        ["manage.py", "migrate", "--noinput", "-v", "0"],
        [
            "manage.py",
            "shell",
            "-c",
            "from signalpost.newsletters.models import Newsletter; "
            "Newsletter.objects.create(slug='bench', name='Bench', opt_in='single')",
        ],
    ):
        subprocess.run([PYTHON, *argv], cwd=REPO_ROOT, env=env, check=True, capture_output=True)


def variant_run(dbname, batches, *, all_tables, drop_redundant):
    times = Counter()
    with connect(dbname, cursor_factory=psycopg.ClientCursor) as connection:
        cursor = connection.cursor()
        if drop_redundant:
            for index in REDUNDANT:
                cursor.execute(f"DROP INDEX IF EXISTS {index}")
        newsletter = cursor.execute(
            "SELECT id FROM newsletters_newsletter WHERE slug = 'bench'"
        ).fetchone()[0]
        connection.commit()

        def step(name, sql, params=()):
            started = time.perf_counter()
            cursor.execute(sql, params)
            times[name] += time.perf_counter() - started

        for number in range(batches):
            step("temporary table", TEMP)
            step("fill it (on the server)", FILL, [number * BATCH, number * BATCH + BATCH - 1])
            step("profiles", PROFILES)
            step("subscriptions", SUBSCRIPTIONS, [newsletter])
            ids = [row[0] for row in cursor.fetchall()]
            if all_tables:
                step("Profile.subscriptions", M2M, [ids, newsletter])
                step("activity", ACTIVITY, [ids, newsletter])
            started = time.perf_counter()
            connection.commit()
            times["commit (foreign-key checks)"] += time.perf_counter() - started
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help=f"batches of {BATCH:,} rows")
    args = parser.parse_args()
    name = f"signalpost_bench_import_floor_{os.getpid()}"
    template = f"{name}_template"
    admin = connect(urlsplit(PG_URL).path.lstrip("/") or "postgres", autocommit=True)
    rows = args.batches * BATCH
    try:
        admin.execute(f'CREATE DATABASE "{template}"')
        prepare(template)
        print(
            f"PostgreSQL alone, {rows:,} rows in batches of {BATCH:,}, load average "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        for label, all_tables, drop_redundant in VARIANTS:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            times = variant_run(
                name, args.batches, all_tables=all_tables, drop_redundant=drop_redundant
            )
            total = sum(times.values())
            print(f"{label}: {rows / total:,.0f} rows/s ({total / rows * 1e6:.0f} µs a row)")
            for step, seconds in times.most_common():
                print(f"    {step:30} {seconds / rows * 1e6:6.1f} µs a row")
    finally:
        for database in (name, template):
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
