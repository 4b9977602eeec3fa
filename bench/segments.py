"""Counting segments of 100,000 subscribers on PostgreSQL.

Run from the repository root (one benchmark at a time on the machine)::

    flock /tmp/bench.lock .venv/bin/python bench/segments.py           # 100,000 subscribers
    flock /tmp/bench.lock .venv/bin/python bench/segments.py --people 20000 --runs 5

What it does:

- creates a throwaway database ``signalpost_bench_segments_<pid>`` on ``BENCH_PG_URL``
  (default ``postgres://postgres@127.0.0.1:5432/postgres``) and migrates it (so the GIN
  index on the profiles' attributes and the (tag, profile) index exist, as in production);
- writes, set-based, ``--people`` profiles, each with an active subscription to the
  newsletter ``weekly`` (a quarter of them imported, subscribed over the last year), the
  attributes ``plan`` (free/pro/team; missing for a tenth), ``age`` (a number, 18-80) and
  ``city``, and the tags ``vip`` (10 %), ``beta`` (25 %) and ``churned`` (5 %); plus 20,000
  people subscribed to another newsletter with the same attributes, who must never count;
  12 sent issues of ``weekly`` (one a day) and one still sending, and their engagement
  rows written in SQL: person ``n`` clicked issue ``k`` when ``(7n + 13k) mod 10 = 0``
  (10 % an issue), a link scanner clicked when ``(n + k) mod 50 = 1``, and ``n`` opened
  when ``(n + 5k) mod 20 < 3`` (about 330,000 rows at 100,000 people; the issue still
  sending and another newsletter's issue get rows that must never count);
  then ``ANALYZE``;
- for each of five typical filters and two engagement ones, checks it through
  ``segment_rules_check`` and counts it the way the staff page and the API do
  (``selectors.segment_subscriptions(...).count()``, the ORM compiling the query each
  time), ``--runs`` times after one warm-up; reports the
  count, the median and the slowest run in milliseconds and the plan's index scans
  (``EXPLAIN``);
- checks each count against the same people counted in Python from the generated data;
- drops the database.

Goal (issue #23): counting a segment of 100,000 subscribers takes under 200 ms.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import django_on_throwaway_database

FILTERS = {
    "plan equals pro": {
        "conditions": [{"type": "attribute", "key": "plan", "op": "equals", "value": "pro"}]
    },
    "tag vip": {"conditions": [{"type": "tag", "op": "has", "value": "vip"}]},
    "age > 40 and subscribed in the last 90 days": {
        "conditions": [
            {"type": "attribute", "key": "age", "op": "greater", "value": 40},
            {"type": "subscribed", "op": "after", "value": "{recent}"},
        ]
    },
    "any: tag beta, or city contains 'ber'": {
        "match": "any",
        "conditions": [
            {"type": "tag", "op": "has", "value": "beta"},
            {"type": "attribute", "key": "city", "op": "contains", "value": "ber"},
        ],
    },
    "plan set, not churned, imported": {
        "conditions": [
            {"type": "attribute", "key": "plan", "op": "exists"},
            {"type": "tag", "op": "has_not", "value": "churned"},
            {"type": "source", "op": "equals", "value": "import"},
        ]
    },
}
ENGAGEMENT_FILTERS = {
    "clicked any of the last 3 issues": {
        "conditions": [{"type": "engagement", "op": "clicked", "value": 3}]
    },
    "opened none of the last 6, not churned": {
        "conditions": [
            {"type": "engagement", "op": "not_opened", "value": 6},
            {"type": "tag", "op": "has_not", "value": "churned"},
        ]
    },
}
FILTERS.update(ENGAGEMENT_FILTERS)
ISSUES_SENT = 12  # issue k = 1 (oldest) .. 12 (latest); 13 is still sending
SEQ_SCANS_NOTED = ("engagement_engagement",)
CITIES = ["Berlin", "Bern", "Paris", "Lisbon", "Oslo", "Lima", "Cairo"]


def expected_counts(people, recent_days):
    """What each filter must count, from the rules that generated the data."""
    counts = dict.fromkeys(FILTERS, 0)
    for n in range(1, people + 1):
        plan = None if n % 10 == 0 else ["free", "pro", "team"][n % 3]
        age, city, days = 18 + n % 63, CITIES[n % len(CITIES)], n % 365
        vip, beta, churned = n % 10 == 0, n % 4 == 1, n % 20 == 3
        imported = n % 4 == 0
        counts["plan equals pro"] += plan == "pro"
        counts["tag vip"] += vip
        counts["age > 40 and subscribed in the last 90 days"] += age > 40 and days < recent_days
        counts["any: tag beta, or city contains 'ber'"] += beta or "ber" in city.lower()
        counts["plan set, not churned, imported"] += plan is not None and not churned and imported
        clicked = {k for k in range(1, ISSUES_SENT + 1) if (7 * n + 13 * k) % 10 == 0}
        opened = {k for k in range(1, ISSUES_SENT + 1) if (n + 5 * k) % 20 < 3}
        counts["clicked any of the last 3 issues"] += bool(clicked & {10, 11, 12})
        counts["opened none of the last 6, not churned"] += (
            not opened & set(range(7, 13)) and not churned
        )
    return counts


def populate_engagement(weekly, other):
    """The issues and their engagement rows (see the module's docstring), in SQL."""
    from django.db import connection
    from django.utils import timezone

    from signalpost.publishing.models import Issue

    now = timezone.now()
    issues = {}
    for k in range(1, ISSUES_SENT + 2):
        status = Issue.Status.SENT if k <= ISSUES_SENT else Issue.Status.SENDING
        moment = now - timezone.timedelta(days=ISSUES_SENT + 1 - k)
        issues[k] = Issue.objects.create(
            newsletter=weekly,
            subject=f"Issue {k}",
            slug=f"issue-{k}",
            body_markdown="Hi.",
            status=status,
            sending_started_at=moment,
            sent_at=moment,
        ).pk
    elsewhere = Issue.objects.create(
        newsletter=other,
        subject="Other",
        slug="other",
        body_markdown="Hi.",
        status=Issue.Status.SENT,
        sending_started_at=now,
        sent_at=now,
    ).pk
    people = (
        "SELECT id, split_part(substr(email, 2), '@', 1)::int AS n FROM accounts_profile "
        "WHERE email LIKE 'p%%'"
    )
    rules = (
        ("click", "true", "''", "mod(7 * n + 13 * k, 10) = 0"),
        ("click", "false", "'scanner'", "mod(n + k, 50) = 1"),
        ("open", "true", "''", "mod(n + 5 * k, 20) < 3"),
    )
    issue_of_k = "CASE k " + " ".join(f"WHEN {k} THEN {pk}" for k, pk in issues.items()) + " END"
    with connection.cursor() as cursor:
        for kind, human, machine, rule in rules:
            cursor.execute(
                "INSERT INTO engagement_engagement (newsletter_id, issue_id, profile_id, kind, "
                "link_index, is_human, machine, is_first, occurred_at) "
                f"SELECT %s, {issue_of_k}, p.id, %s, 0, {human}, {machine}, {human}, now() "
                f"FROM ({people}) p, generate_series(1, %s) k WHERE {rule}",
                [weekly.pk, kind, ISSUES_SENT + 1],
            )
        # The issue still sending, and another newsletter's: rows that must never count.
        cursor.execute(
            "INSERT INTO engagement_engagement (newsletter_id, issue_id, profile_id, kind, "
            "link_index, is_human, machine, is_first, occurred_at) "
            "SELECT i.newsletter_id, i.id, p.id, kind, 0, true, '', true, now() "
            f"FROM ({people}) p, publishing_issue i, (VALUES ('click'), ('open')) v(kind) "
            "WHERE i.id IN (%s, %s) AND mod(p.n, 3) = 0",
            [issues[ISSUES_SENT + 1], elsewhere],
        )
        cursor.execute("SELECT count(*) FROM engagement_engagement")
        return cursor.fetchone()[0]


def populate(people):
    from django.db import connection

    from signalpost.newsletters.models import Newsletter

    weekly = Newsletter.objects.create(slug="weekly", name="Weekly")
    other = Newsletter.objects.create(slug="other", name="Other")
    cities = "ARRAY[" + ",".join(f"'{c}'" for c in CITIES) + "]"
    attributes = (
        "jsonb_strip_nulls(jsonb_build_object("
        "'plan', CASE WHEN mod(g, 10) = 0 THEN NULL "
        "ELSE (ARRAY['free','pro','team'])[1 + mod(g, 3)] END, "
        f"'age', 18 + mod(g, 63), 'city', ({cities})[1 + mod(g, {len(CITIES)})]))"
    )
    with connection.cursor() as cursor:
        for newsletter, prefix, count in ((weekly, "p", people), (other, "o", 20_000)):
            cursor.execute(
                "INSERT INTO accounts_profile (email, name, attributes, soft_bounce_count, "
                f"created_at, updated_at) SELECT '{prefix}' || g || '@example.com', '', "
                f"{attributes}, 0, now(), now() FROM generate_series(1, %s) g",
                [count],
            )
            cursor.execute(
                "INSERT INTO newsletters_subscription (profile_id, newsletter_id, status, source, "
                "created_at, subscribed_at, unsubscribe_reason, consent_user_agent) "
                "SELECT p.id, %s, 'active', CASE WHEN mod(n, 4) = 0 THEN 'import' ELSE 'form' END, "
                "now(), now() - (mod(n, 365)) * interval '1 day', '', '' FROM ("
                "SELECT id, split_part(substr(email, 2), '@', 1)::int AS n FROM accounts_profile "
                "WHERE email LIKE %s) p",
                [newsletter.pk, f"{prefix}%"],
            )
        cursor.execute(
            "INSERT INTO accounts_tag (name, created_at) VALUES "
            "('vip', now()), ('beta', now()), ('churned', now())"
        )
        rules = (
            ("vip", "mod(n, 10) = 0"),
            ("beta", "mod(n, 4) = 1"),
            ("churned", "mod(n, 20) = 3"),
        )
        for tag, rule in rules:
            cursor.execute(
                "INSERT INTO accounts_profiletag (profile_id, tag_id, created_at) "
                "SELECT p.id, t.id, now() FROM (SELECT id, "
                "split_part(substr(email, 2), '@', 1)::int AS n FROM accounts_profile) p, "
                f"accounts_tag t WHERE t.name = %s AND {rule}",
                [tag],
            )
    rows = populate_engagement(weekly, other)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return weekly, rows


def index_scans(queryset):
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    names = sorted(
        {
            word.strip('"')
            for line in plan.splitlines()
            for word in line.split()
            if (word.startswith(("accounts_", "newsletters_")) and "idx" in word)
            or word.startswith(("engagement_issue", "engagement_newsletter", "publishing__"))
            or word.endswith("_gin")
            or word.endswith("_unique")
        }
    )
    if os.environ.get("BENCH_PLANS"):
        print(plan)
    scanned = [f"seq scan {table}" for table in SEQ_SCANS_NOTED if f"Seq Scan on {table}" in plan]
    return ", ".join(names + scanned) or "(none: sequential scans)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()

    with django_on_throwaway_database("segments"):
        from django.utils import timezone

        from signalpost.newsletters.segments import segment_rules_check
        from signalpost.newsletters.selectors import segment_subscriptions

        started = time.perf_counter()
        weekly, engagement_rows = populate(options.people)
        print(
            f"{options.people:,} subscribers (+20,000 elsewhere), {engagement_rows:,} "
            "engagement rows written in "
            f"{time.perf_counter() - started:.1f} s; load: {os.getloadavg()[0]:.2f}"
        )
        recent_days = 90
        recent = timezone.now() - timezone.timedelta(days=recent_days) + timezone.timedelta(hours=1)
        expected = expected_counts(options.people, recent_days)
        print("\n| filter | matches | median ms | slowest ms | indexes in the plan |")
        print("| --- | ---: | ---: | ---: | --- |")
        worst = 0.0
        for name, raw in FILTERS.items():
            text = json.dumps(raw).replace('"{recent}"', json.dumps(recent.isoformat()))
            rules = segment_rules_check(json.loads(text))
            segment_subscriptions(newsletter_id=weekly.pk, rules=rules).count()  # warm-up
            timings, count = [], None
            for _ in range(options.runs):
                start = time.perf_counter()
                count = segment_subscriptions(newsletter_id=weekly.pk, rules=rules).count()
                timings.append((time.perf_counter() - start) * 1000)
            worst = max(worst, max(timings))
            plan = index_scans(segment_subscriptions(newsletter_id=weekly.pk, rules=rules))
            status = "" if count == expected[name] else f" (expected {expected[name]:,}!)"
            print(
                f"| {name} | {count:,}{status} | {statistics.median(timings):.1f} | "
                f"{max(timings):.1f} | {plan} |"
            )
            assert count == expected[name], (name, count, expected[name])
        print(
            f"\nslowest count of all: {worst:.1f} ms (goal < 200 ms); load after: "
            f"{os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
