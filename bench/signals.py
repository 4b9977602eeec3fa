"""Benchmarks of Signalpost's signals: what subscribing through them costs, and what the
catalogue's argument check adds to a send.

Run from the repository root::

    .venv/bin/python bench/signals.py            # throwaway SQLite file in a temp dir
    .venv/bin/python bench/signals.py --quick    # a smaller, faster run
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/signals.py

With a PostgreSQL URL the benchmark creates its own database (``signalpost_bench_<pid>``)
on that server, migrates it and drops it at the end; the database named in the URL is
never touched. Any other DATABASE_URL is ignored in favour of a throwaway SQLite file.

Variants are interleaved (their order alternates from one repeat to the next) and every
figure is the median over the repeats; ratios and overheads are medians of the ratios of
batches measured back to back, which cancels most of a shared machine's drift.
"""

import argparse
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Measured as in production: no DEBUG query log on every cursor (override with DEBUG=1).
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")

SEND_ARGUMENTS = ("profile", "newsletter", "subscription", "user_email")
RECEIVER_COUNTS = (0, 10, 50)
SEND_OVERHEAD_GOAL = 0.10
UNROLL = 10  # calls per loop iteration in the send timings, so loop overhead is ~1 ns


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    return parser.parse_args()


# Database set-up ---------------------------------------------------------------------------


class BenchDatabase:
    """A database of the benchmark's own: a temp SQLite file, or a new PostgreSQL database."""

    def __init__(self, url):
        self.given_url = url or ""
        self.tmpdir = None
        self.pg_conninfo = None
        self.pg_name = None

    def __enter__(self):
        scheme = urlsplit(self.given_url).scheme.lower()
        if scheme in {"postgres", "postgresql", "pgsql"}:
            self.url = self._create_postgres()
        else:
            if self.given_url:
                print(f"note: ignoring DATABASE_URL={self.given_url!r}; using throwaway SQLite")
            self.tmpdir = tempfile.mkdtemp(prefix="signalpost-bench-")
            self.url = f"sqlite:///{self.tmpdir}/bench.sqlite3"
        os.environ["DATABASE_URL"] = self.url
        return self

    def _create_postgres(self):
        import psycopg
        from psycopg.conninfo import make_conninfo

        self.pg_conninfo = make_conninfo(self.given_url, dbname="postgres")
        self.pg_name = f"signalpost_bench_{os.getpid()}"
        with psycopg.connect(self.pg_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        return urlsplit(self.given_url)._replace(path=f"/{self.pg_name}").geturl()

    def __exit__(self, *exc_info):
        from django.db import connections

        if "django.apps" in sys.modules and sys.modules["django.apps"].apps.ready:
            connections.close_all()
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.pg_conninfo, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def describe_database():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]} (WAL, synchronous=NORMAL)"


# Timing helpers ----------------------------------------------------------------------------


def median(values):
    return statistics.median(values)


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def timed_ns(function, *args):
    """Run ``function(*args)`` with the cyclic collector off; return the elapsed nanoseconds.

    The collector runs between batches (``gc.collect()`` per section), not inside them.
    """
    gc.disable()
    try:
        start = time.perf_counter_ns()
        function(*args)
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


# 1. Subscribe through the service versus the same writes by hand --------------------------


def bench_subscribe(*, batch, repeats):
    import uuid

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult, get_date_max

    from signalpost.accounts.models import Profile
    from signalpost.activity.models import Activity
    from signalpost.newsletters.models import Newsletter, Subscription
    from signalpost.newsletters.services import subscribe
    from signalpost.signals import user_subscribed

    receivers = user_subscribed._live_receivers(Subscription)[0]
    # The durable receivers that record a task on a subscribe (some may decline at send
    # time, e.g. webhooks with no endpoint): found after the service's warm-up below.
    durable_receivers = []
    newsletter = Newsletter.objects.create(
        slug="bench", name="Bench", opt_in=Newsletter.OptIn.SINGLE
    )
    counter = iter(range(10**9))

    def service_one(email):
        subscribe(email=email, newsletter=newsletter, source="form")

    def orm_one(email):
        with transaction.atomic():
            profile, _ = Profile.objects.get_or_create(email=email, defaults={"name": ""})
            subscription = Subscription.objects.create(
                profile=profile,
                newsletter=newsletter,
                source=Subscription.Source.FORM,
                status=Subscription.Status.ACTIVE,
                subscribed_at=timezone.now(),
            )
            profile.subscriptions.add(newsletter)
            Activity.objects.create(
                profile=profile,
                event=Activity.Event.SUBSCRIBED,
                newsletter=newsletter,
                detail={"source": "form"},
            )
            # The task row each durable receiver of user_subscribed records (the welcome email).
            for path in durable_receivers:
                DBTaskResult.objects.create(
                    args_kwargs={
                        "args": [],
                        "kwargs": {
                            "receiver": path,
                            "signal": "user_subscribed",
                            "sender": {"$model_class": "newsletters.Subscription"},
                            "payload": {
                                "profile": {"$model": "accounts.Profile", "pk": profile.pk},
                                "newsletter": {
                                    "$model": "newsletters.Newsletter",
                                    "pk": newsletter.pk,
                                },
                                "subscription": {
                                    "$model": "newsletters.Subscription",
                                    "pk": subscription.pk,
                                },
                                "user_email": email,
                                "source": "form",
                            },
                            "idempotency_key": uuid.uuid4().hex,
                            "attempt": 1,
                            "dead_letter_id": None,
                        },
                    },
                    task_path="signalpost.durable.tasks.run_durable_receiver",
                    queue_name="default",
                    backend_name="default",
                    run_after=get_date_max(),
                )

    variants = {"service": service_one, "orm": orm_one}

    def run_batch(one, prefix, n):
        emails = [f"bench-{prefix}-{next(counter)}@example.com" for _ in range(n)]
        for email in emails:
            one(email)

    # Warm-up, then one captured op per variant for the statement count. The direct
    # variant writes the task rows that the service's warm-up recorded.
    run_batch(service_one, "service", 20)
    for row in DBTaskResult.objects.values("args_kwargs"):
        durable_receivers.append(row["args_kwargs"]["kwargs"]["receiver"])
    durable_receivers[:] = sorted(durable_receivers)[::20]
    run_batch(orm_one, "orm", 20)
    statements = {}
    for name, one in variants.items():
        with CaptureQueriesContext(connection) as captured:
            run_batch(one, name, 1)
        statements[name] = len(captured.captured_queries)

    gc.collect()
    per_op = {name: [] for name in variants}
    ratios = []
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        this_repeat = {}
        for name in order:
            elapsed = timed_ns(run_batch, variants[name], name, batch)
            this_repeat[name] = elapsed / batch
            per_op[name].append(elapsed / batch)
        ratios.append(this_repeat["service"] / this_repeat["orm"])

    # Both variants must have written the same rows.
    active = Subscription.objects.filter(status=Subscription.Status.ACTIVE).count()
    activities = Activity.objects.filter(event=Activity.Event.SUBSCRIBED).count()
    links = Profile.subscriptions.through.objects.count()
    tasks = DBTaskResult.objects.count()
    expected = 2 * (20 + 1 + batch * repeats)
    if not active == activities == links == expected or tasks != expected * len(durable_receivers):
        raise AssertionError(f"rows: {active=} {activities=} {links=} {tasks=} {expected=}")

    return {
        "receivers": [
            f"{r.__module__}.{r.__name__}"
            + (" (durable)" if hasattr(r, "durable_receiver") else "")
            for r in receivers
        ],
        "tasks_recorded": list(durable_receivers),
        "per_op_ns": {name: median(values) for name, values in per_op.items()},
        "statements": statements,
        "ratio": median(ratios),
        "ratio_iqr": quartiles(ratios),
    }


# 2. Send cost: DeclaredSignal versus a bare Signal ----------------------------------------


def noop_receiver(sender, **kwargs):
    return None


def make_timer(stmt, namespace):
    return timeit.Timer("\n".join([stmt] * UNROLL), globals=namespace, timer=time.perf_counter_ns)


def calibrate(timer, target_ns):
    """Return a loop count for which ``timer`` runs for about ``target_ns``."""
    number = 10
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target_ns / 4:
            return max(1, round(number * target_ns / elapsed))
        number *= 4


def bench_send(*, repeats, target_ns):
    from django.dispatch import Signal

    from signalpost.dispatch import DeclaredSignal

    class Sender:
        pass

    send_kwargs = {name: object() for name in SEND_ARGUMENTS}
    call = "send(Sender, " + ", ".join(f"{name}={name}" for name in SEND_ARGUMENTS) + ")"
    rows = []
    for count in RECEIVER_COUNTS:
        signals = {
            "bare": Signal(),
            "declared": DeclaredSignal(f"bench_send_{count}", arguments=SEND_ARGUMENTS),
        }
        for signal in signals.values():
            for index in range(count):
                signal.connect(noop_receiver, weak=False, dispatch_uid=f"bench-{index}")
            responses = signal.send(Sender, **send_kwargs)
            if len(responses) != count:
                raise AssertionError(f"{signal!r} reached {len(responses)} of {count} receivers")
        timers = {
            name: make_timer(call, {"send": signal.send, "Sender": Sender, **send_kwargs})
            for name, signal in signals.items()
        }
        number = calibrate(timers["declared"], target_ns)
        gc.collect()
        per_send = {name: [] for name in signals}
        diffs = []
        overheads = []
        for repeat in range(repeats):
            order = list(signals) if repeat % 2 == 0 else list(reversed(signals))
            this_repeat = {}
            for name in order:
                elapsed = timed_ns(timers[name].timeit, number)
                this_repeat[name] = elapsed / (number * UNROLL)
                per_send[name].append(this_repeat[name])
            diffs.append(this_repeat["declared"] - this_repeat["bare"])
            overheads.append(this_repeat["declared"] / this_repeat["bare"] - 1)
        rows.append(
            {
                "receivers": count,
                "bare_ns": median(per_send["bare"]),
                "declared_ns": median(per_send["declared"]),
                "diff_ns": median(diffs),
                "overhead": median(overheads),
                "overhead_iqr": quartiles(overheads),
            }
        )

    signal = DeclaredSignal("bench_check", arguments=SEND_ARGUMENTS)
    check_timer = make_timer(
        "check(kwargs)", {"check": signal.check_arguments, "kwargs": dict(send_kwargs)}
    )
    number = calibrate(check_timer, target_ns)
    check_ns = median(
        [timed_ns(check_timer.timeit, number) / (number * UNROLL) for _ in range(repeats)]
    )
    return {"rows": rows, "check_ns": check_ns}


# Report ------------------------------------------------------------------------------------


def print_table(title, header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(title)
    line = "  ".join(
        str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
        for i, (cell, width) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


def report(database, settings, subscribe_result, send_result, elapsed_s):
    import django

    print(
        f"Signalpost signal benchmarks, {time.strftime('%Y-%m-%d')}: {database}; "
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{os.cpu_count()} CPUs; interleaved batches, medians"
        + (" (--quick)" if settings["quick"] else "")
    )
    print()

    s = subscribe_result
    service_us = s["per_op_ns"]["service"] / 1000
    orm_us = s["per_op_ns"]["orm"] / 1000
    q1, q3 = s["ratio_iqr"]
    print_table(
        f"1. Subscribe, one new address per op ({settings['repeats']} batches of "
        f"{settings['batch']} per variant)",
        ["variant", "us/op", "SQL statements/op*"],
        [
            ["subscribe() + real receivers", f"{service_us:.1f}", s["statements"]["service"]],
            ["same writes, direct ORM in atomic()", f"{orm_us:.1f}", s["statements"]["orm"]],
            ["ratio service / direct", f"{s['ratio']:.2f}x ({q1:.2f}-{q3:.2f})", ""],
        ],
    )
    print("   receivers of user_subscribed: " + ", ".join(s["receivers"]))
    print(
        "   task rows recorded per subscribe (both variants write them): "
        + (", ".join(s["tasks_recorded"]) or "none")
    )
    print("   * as captured by Django, including BEGIN, COMMIT and savepoints")
    print()

    rows = []
    for row in send_result["rows"]:
        q1, q3 = row["overhead_iqr"]
        rows.append(
            [
                str(row["receivers"]),
                f"{row['bare_ns']:.0f}",
                f"{row['declared_ns']:.0f}",
                f"{row['diff_ns']:+.0f}",
                f"{row['overhead']:+.1%} ({q1:+.1%} to {q3:+.1%})",
                "yes" if row["overhead"] < SEND_OVERHEAD_GOAL else "NO",
            ]
        )
    rows.append(["check_arguments(kwargs) alone", "", f"{send_result['check_ns']:.0f}", "", "", ""])
    print_table(
        f"2. send() with 4 arguments to no-op receivers, ns per send "
        f"({settings['send_repeats']} batches of ~{settings['target_ns'] // 1_000_000} ms "
        "per cell; diff and overhead are medians of back-to-back pairs)",
        ["receivers", "bare Signal", "DeclaredSignal", "diff", "overhead (IQR)", "<10%"],
        rows,
    )
    print(f"total time {elapsed_s:.0f} s")


def main():
    args = parse_args()
    # Many short batches pair up better on a busy machine than a few long ones: a batch that
    # another process pre-empts spoils one pair, not the median.
    settings = {
        "quick": args.quick,
        "batch": 10 if args.quick else 20,
        "repeats": 15 if args.quick else 100,
        "send_repeats": 61 if args.quick else 401,
        "target_ns": 1_000_000 if args.quick else 2_000_000,
    }
    started = time.perf_counter()
    with BenchDatabase(os.environ.get("DATABASE_URL")):
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        database = describe_database()
        print(f"running on {database}: subscribe ...", file=sys.stderr)
        subscribe_result = bench_subscribe(batch=settings["batch"], repeats=settings["repeats"])
        print("send ...", file=sys.stderr)
        send_result = bench_send(repeats=settings["send_repeats"], target_ns=settings["target_ns"])
    report(database, settings, subscribe_result, send_result, time.perf_counter() - started)


if __name__ == "__main__":
    main()
