"""Staff pages at 1,000,000 subscriptions: median and p95 of each page's answer time.

Run from the repository root::

    .venv/bin/python bench/staff_pages.py                    # seed, measure, drop
    .venv/bin/python bench/staff_pages.py --keep             # keep the seeded database
    .venv/bin/python bench/staff_pages.py --reuse --keep     # measure the kept one again

The database (``bench_millions`` unless ``--db`` says otherwise) is created on the
PostgreSQL of ``BENCH_PG_URL`` and migrated, then seeded in SQL with ``generate_series``
(about a minute): ``--subscriptions`` profiles (1,000,000), and as many subscriptions over
three newsletters (80%, 15% and 5% of them; 90% active, the rest pending, unsubscribed in
the last 60 days or bounced; subscribed over the last 400 days), three sent issues of the
largest newsletter, the latest with a delivery for each of its active subscribers, then
``VACUUM ANALYZE``. Nothing else is needed: this process runs Django in production
settings (``DEBUG=0``, the cache in Redis database 5 unless ``CACHE_URL`` says otherwise)
and asks each page through Django's test client as a logged-in superuser, once to warm up
and then ``--runs`` times (15), recording the wall time of each answer. The slowest SQL
statement of the last run of each page is printed beside it (``--sql`` prints them all).
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

from harness import pg_connect, pg_url_for

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "bench_millions"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database again")
    parser.add_argument("--sql", action="store_true", help="print every page's statements")
    return parser.parse_args()


def database_exists(name):
    with pg_connect() as connection:
        return bool(
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        )


def database_create(name):
    with pg_connect() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def database_drop(name):
    with pg_connect() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def django_start(db_name):
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "signalpost.settings",
            "SIGNALPOST_MODE": "production",
            "DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY", secrets.token_urlsafe(48)),
            "ALLOWED_HOSTS": "testserver",
            "SITE_URL": "https://news.example.com",
            "DATABASE_URL": pg_url_for(db_name),
            "CACHE_URL": os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/5"),
            "LOG_LEVEL": "WARNING",
            "STATIC_ROOT": os.environ.get("STATIC_ROOT", str(REPO_ROOT / "var" / "static")),
        }
    )
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


SEED = [
    # Profiles: one per subscription; every other one has a name.
    "INSERT INTO accounts_profile (email, name, attributes, soft_bounce_count, created_at, "
    "updated_at) SELECT 'reader' || g || '@example.com', "
    "CASE WHEN g % 2 = 1 THEN 'Reader ' || g ELSE '' END, '{{}}'::jsonb, 0, "
    "now() - (g % 400) * interval '1 day', now() FROM generate_series(1, {total}) g",
    # Subscriptions: newsletter n takes the profiles of its share, in id order.
    "INSERT INTO newsletters_subscription (profile_id, newsletter_id, status, source, "
    "created_at, requested_at, subscribed_at, unsubscribed_at, bounced_at, "
    "unsubscribe_reason, consent_at, consent_user_agent) "
    "SELECT p.id, {newsletter}, s.status, 'import', s.at, s.at, "
    "CASE WHEN s.status = 'pending' THEN NULL ELSE s.at END, "
    "CASE WHEN s.status = 'unsubscribed' THEN now() - (p.id % 60) * interval '1 day' END, "
    "CASE WHEN s.status = 'bounced' THEN now() - (p.id % 90) * interval '1 day' END, "
    "'', s.at, '' FROM (SELECT id FROM accounts_profile ORDER BY id LIMIT {count}) p "
    "CROSS JOIN LATERAL (SELECT CASE WHEN p.id % 100 < 90 THEN 'active' "
    "WHEN p.id % 100 < 93 THEN 'pending' WHEN p.id % 100 < 98 THEN 'unsubscribed' "
    "ELSE 'bounced' END AS status, "
    "now() - (p.id % 400) * interval '1 day' - (p.id % 86400) * interval '1 second' AS at) s",
]


def seed(total):
    """Create the newsletters, subscriptions, issues and deliveries; return the seconds."""
    from django.contrib.auth.models import User
    from django.db import connection

    from signalpost.newsletters.models import Newsletter
    from signalpost.publishing.models import Issue
    from signalpost.publishing.services import issue_create

    began = time.monotonic()
    User.objects.create_superuser("bench", "bench@example.com", "bench")
    shares = [("the-daily", "The Daily", 0.80), ("weekly", "Weekly", 0.15), ("rare", "Rare", 0.05)]
    newsletters = []
    with connection.cursor() as cursor:
        cursor.execute(SEED[0].format(total=total))
        for slug, name, share in shares:
            newsletter = Newsletter.objects.create(
                slug=slug, name=name, opt_in="single", sender_email=f"{slug}@example.com"
            )
            newsletters.append(newsletter)
            count = int(total * share)
            cursor.execute(SEED[1].format(newsletter=newsletter.pk, count=count))
    largest = newsletters[0]
    for number in range(1, 4):
        issue = issue_create(
            newsletter=largest, subject=f"Issue {number}", body_markdown="Hello **there**."
        )
        Issue.objects.filter(pk=issue.pk).update(
            status="sent",
            sending_started_at=time_ago(days=30 - number),
            prepared_at=time_ago(days=30 - number),
            sent_at=time_ago(days=30 - number),
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO publishing_delivery (issue_id, profile_id, email, status, attempts, "
            "claimed_by, message_id, last_error, sent_at) "
            "SELECT %s, p.id, p.email, CASE WHEN p.id %% 500 = 0 THEN 'failed' ELSE 'sent' END, "
            "1, '', '<m' || p.id || '@example.com>', '', now() "
            "FROM newsletters_subscription s JOIN accounts_profile p ON p.id = s.profile_id "
            "WHERE s.newsletter_id = %s AND s.status = 'active'",
            [issue.pk, largest.pk],
        )
        Issue.objects.filter(pk=issue.pk).update(recipient_count=cursor.rowcount)
        cursor.execute("VACUUM ANALYZE")
    return time.monotonic() - began


def time_ago(*, days):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(days=days)


def pages(total):
    middle = total // 2 + 123
    return [
        ("admin index (dashboard)", "/admin/"),
        ("newsletters list", "/admin/newsletters/newsletter/"),
        ("subscriptions list", "/admin/newsletters/subscription/"),
        ("subscriptions, active filter", "/admin/newsletters/subscription/?status__exact=active"),
        ("subscriptions, search an address", f"/admin/newsletters/subscription/?q=reader{middle}@"),
        ("profiles list", "/admin/accounts/profile/"),
        ("profiles, search an address", f"/admin/accounts/profile/?q=reader{middle}@example.com"),
        ("profiles, search a part", f"/admin/accounts/profile/?q=der{middle // 10}"),
        ("issues list", "/admin/publishing/issue/"),
    ]


def measure(runs, total, *, show_sql):
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    results = []
    for label, url in pages(total):
        times = []
        for run in range(runs + 1):
            connection.force_debug_cursor = run == runs
            reset_queries()
            began = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - began
            connection.force_debug_cursor = False
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
            if run:
                times.append(elapsed)
        queries = list(connection.queries)
        slowest = max(queries, key=lambda query: float(query["time"]), default=None)
        results.append((label, url, times, queries, slowest))
        print(
            f"{label}: median {1000 * statistics.median(times):.0f} ms, {len(queries)} queries",
            flush=True,
        )
        if show_sql:
            for query in queries:
                print(f"    {float(query['time']) * 1000:7.1f} ms  {query['sql'][:300]}")
    return results


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results):
    print()
    print("| page | median, ms | p95, ms | queries | slowest statement, ms |")
    print("|---|---:|---:|---:|---:|")
    for label, _url, times, queries, slowest in results:
        print(
            f"| {label} | {1000 * statistics.median(times):.0f} "
            f"| {1000 * percentile(times, 0.95):.0f} | {len(queries)} "
            f"| {float(slowest['time']) * 1000 if slowest else 0:.0f} |"
        )
    print()
    for label, _url, times, _queries, slowest in results:
        median = 1000 * statistics.median(times)
        verdict = "met" if median < 200 else "missed"
        line = f"{label}: median {median:.0f} ms ({verdict}, goal < 200 ms)"
        if slowest and verdict == "missed":
            line += f"; slowest statement {float(slowest['time']) * 1000:.0f} ms: "
            line += slowest["sql"][:200]
        print(line)


def main():
    args = parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    began = time.monotonic()
    reuse = args.reuse and database_exists(args.db)
    if not reuse:
        database_create(args.db)
    try:
        django_start(args.db)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if not reuse:
            print(f"seeding {args.db}: {args.subscriptions:,} subscriptions", flush=True)
            print(f"seeded in {seed(args.subscriptions):.0f} s", flush=True)
        # Production pages name the hashed static files collectstatic records.
        call_command("collectstatic", interactive=False, verbosity=0)
        from django.core.cache import cache

        cache.clear()
        results = measure(args.runs, args.subscriptions, show_sql=args.sql)
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            database_drop(args.db)
    report(results)
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; "
        f"whole run {time.monotonic() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
