"""The date trigger's scan: who is due, among 100,000 subscribers, on PostgreSQL.

Run from the repository root (one benchmark at a time on the machine)::

    flock /tmp/bench.lock .venv/bin/python bench/date_trigger.py
    flock /tmp/bench.lock .venv/bin/python bench/date_trigger.py --people 20000 --runs 5

What it does:

- creates a throwaway database ``signalpost_bench_dates_<pid>`` on ``BENCH_PG_URL``
  (default ``postgres://postgres@127.0.0.1:5432/postgres``) and migrates it;
- writes, set-based, ``--people`` profiles with an active subscription to ``weekly``, each
  with a ``trial_end`` attribute: person ``n``'s date is ``n mod 365`` days after
  2026-01-01, as a date alone (half of them), a UTC datetime (a quarter) or a datetime
  with a ``+02:00`` offset (a quarter); a third have ``time_zone`` ``Asia/Tokyo``; one in
  fifty has a value that is no date (``"soon"``, ``"2026-02-30"``); plus 20,000 people
  subscribed to another newsletter with the same attributes, who must never count;
- the automation: ``date_reached`` on ``trial_end``, 3 days before;
- times, ``--runs`` times after a warm-up, the workers' scan for one moment
  (``selectors.profiles_date_reached``: one query) against the same answer computed the
  way a scan without the SQL expression would: reading every subscriber's attributes and
  applying ``dates.date_due`` in Python; checks both find the same people; reports the
  median and slowest of each and their ratio;
- times the funnel's count of values that are no date (``not_a_date``: the expression
  over every subscriber with the attribute);
- times ``services.enroll_date_reached`` for that moment (the scan plus enrolling, in its
  transaction) and for a moment when everyone with one date (``--shared`` people given
  the same ``trial_end``) comes due at once;
- drops the database.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import django_on_throwaway_database

START = datetime(2026, 1, 1, tzinfo=UTC)
MOMENT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SHARED_DATE = "2026-09-01"


def populate(people, shared):
    from django.db import connection

    from signalpost.newsletters.models import Newsletter

    weekly = Newsletter.objects.create(slug="weekly", name="Weekly")
    other = Newsletter.objects.create(slug="other", name="Other")
    day = "to_char(date '2026-01-01' + mod(g, 365), 'YYYY-MM-DD')"
    value = (
        f"CASE WHEN g <= {shared} THEN '{SHARED_DATE}' "
        "WHEN mod(g, 50) = 0 THEN 'soon' WHEN mod(g, 50) = 25 THEN '2026-02-30' "
        f"WHEN mod(g, 2) = 0 THEN {day} WHEN mod(g, 4) = 1 THEN {day} || 'T09:30:00Z' "
        f"ELSE {day} || 'T09:30:00+02:00' END"
    )
    attributes = (
        f"jsonb_strip_nulls(jsonb_build_object('trial_end', {value}, 'time_zone', "
        "CASE WHEN mod(g, 3) = 0 THEN 'Asia/Tokyo' END, 'plan', 'trial'))"
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
                "SELECT id, %s, 'active', 'import', now(), now(), '', '' FROM accounts_profile "
                "WHERE email LIKE %s",
                [newsletter.pk, f"{prefix}%"],
            )
        cursor.execute("ANALYZE")
    return weekly


def due_in_python(automation, now, grace):
    """The scan without the SQL expression: every subscriber's attributes, in Python."""
    from signalpost.accounts.models import Profile
    from signalpost.automations.dates import date_due
    from signalpost.automations.models import Enrollment
    from signalpost.newsletters.models import Subscription

    moment = now - timedelta(seconds=automation.trigger_offset_seconds)
    handled = {
        (profile_id, value)
        for profile_id, status, value in Enrollment.objects.filter(
            automation=automation
        ).values_list("profile_id", "status", "trigger_date")
    }
    found = []
    rows = Profile.objects.filter(
        pk__in=Subscription.objects.filter(
            newsletter_id=automation.newsletter_id, status="active"
        ).values("profile_id")
    ).values_list("pk", "attributes")
    for pk, attributes in rows.iterator(chunk_size=5000):
        value = attributes.get(automation.trigger_value)
        due = date_due(value, attributes.get("time_zone"))
        if due is not None and moment - grace <= due <= moment and (pk, value) not in handled:
            found.append((pk, value))
    return sorted(found)


def timed(function, runs):
    function()  # warm-up
    timings, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        timings.append((time.perf_counter() - start) * 1000)
    return result, statistics.median(timings), max(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--shared", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    options = parser.parse_args()

    with django_on_throwaway_database("dates"):
        from signalpost.automations.models import Automation, Enrollment
        from signalpost.automations.selectors import dated_subscribers, profiles_date_reached
        from signalpost.automations.services import (
            DATE_GRACE,
            automation_activate,
            automation_create,
            enroll_date_reached,
        )

        print(f"load before: {os.getloadavg()[0]:.2f}")
        started = time.perf_counter()
        weekly = populate(options.people, options.shared)
        print(
            f"{options.people:,} subscribers (+20,000 elsewhere) written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        Automation.objects.filter(newsletter=weekly).delete()  # the welcome
        automation = automation_create(
            newsletter=weekly,
            name="Trial ends",
            trigger="date_reached",
            trigger_value="trial_end",
            trigger_offset_seconds=-3 * 86400,
            steps=[{"kind": "tag_add", "config": {"tag": "reminded"}}],
        )
        automation_activate(automation=automation)

        sql, sql_median, sql_max = timed(
            lambda: list(
                profiles_date_reached(automation=automation, now=MOMENT, grace=DATE_GRACE)
            ),
            options.runs,
        )
        python, py_median, py_max = timed(
            lambda: due_in_python(automation, MOMENT, DATE_GRACE), options.runs
        )
        assert sorted(sql) == python, "the SQL scan and Python disagree"
        print("\n| scan of one moment | due | median ms | slowest ms |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| one query (DateDue) | {len(sql):,} | {sql_median:.1f} | {sql_max:.1f} |")
        print(f"| every row into Python | {len(python):,} | {py_median:.1f} | {py_max:.1f} |")
        print(f"\nPython / SQL (medians): {py_median / sql_median:.2f}x")

        skipped, skip_median, skip_max = timed(
            lambda: dated_subscribers(automation=automation).filter(due__isnull=True).count(),
            options.runs,
        )
        expected_skipped = sum(
            1 for n in range(options.shared + 1, options.people + 1) if n % 50 in (0, 25)
        )
        assert skipped == expected_skipped, (skipped, expected_skipped)
        print(
            f"the funnel's not_a_date count: {skipped:,} in {skip_median:.1f} ms "
            f"(slowest {skip_max:.1f})"
        )
        for label, now in (
            ("a day's dates", MOMENT),
            (f"{options.shared:,} sharing one date", datetime(2026, 8, 29, 12, 0, tzinfo=UTC)),
        ):
            start = time.perf_counter()
            created = enroll_date_reached(now=now)
            elapsed = (time.perf_counter() - start) * 1000
            print(f"enroll_date_reached, {label}: {created:,} enrolled in {elapsed:.0f} ms")
        print(f"enrollments: {Enrollment.objects.count():,}")
        print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
