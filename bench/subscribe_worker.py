"""The worker's side of a sign-up, in process: CPU per confirmation email, and where it goes.

``bench/subscribe.py`` measures the worker from outside, under load; this script
queues ``--signups`` double opt-in sign-ups exactly as ``POST /subscribe/`` does
(``subscribe_queue``, one transaction each), then drains them with the worker loop
(``BatchWorker``, the loop ``manage.py db_worker`` runs) in this process, sending the
confirmation emails to a real SMTP sink on loopback (``subscribe_support/smtp_sink.py``).
It prints the worker's CPU per sign-up (the form task and its confirmation email), the
SQL statements per sign-up, and the emails the sink received; with ``--profile`` the
drain runs under cProfile and the top functions are printed.

Run from the repository root (PostgreSQL at ``BENCH_PG_URL``, default
``postgres://postgres@127.0.0.1:5432/postgres``; it creates
``signalpost_bench_sw_<pid>`` and drops it at the end)::

    .venv/bin/python bench/subscribe_worker.py --signups 2000 [--profile] [--rounds 3]
"""

import argparse
import cProfile
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    REPO_ROOT,
    Service,
    backend_cpu_seconds,
    free_port,
    pg_connect,
    pg_url_for,
    profile_print,
    worker_drain,
)
from subscribe import REDIS_URL, sink_counts

SUPPORT_DIR = Path(__file__).resolve().parent / "subscribe_support"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="drains measured (fresh sign-ups)")
    parser.add_argument("--profile", action="store_true", help="one more drain under cProfile")
    parser.add_argument("--sql", action="store_true", help="print every statement of the drains")
    return parser.parse_args()


def configure(db_name, smtp_port):
    os.environ.update(
        DATABASE_URL=pg_url_for(db_name),
        SECRET_KEY=secrets.token_urlsafe(48),
        SIGNALPOST_MODE="production",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        SITE_URL="http://127.0.0.1",
        CACHE_URL=REDIS_URL,  # as bench/subscribe.py's servers and worker
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="signalpost.settings",
    )
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    import signalpost

    print(f"code: {Path(signalpost.__file__).parent.parent}", flush=True)

    call_command("migrate", verbosity=0, interactive=False)


def signups_queue(newsletter, count, tag):
    from django.utils import timezone

    from signalpost.newsletters.services import ConsentEvidence
    from signalpost.newsletters.tasks import subscribe_queue

    for number in range(count):
        subscribe_queue(
            email=f"reader{number}.{tag}@sw.bench.test",
            newsletter=newsletter,
            name="Bench Reader",
            consent=ConsentEvidence(at=timezone.now(), ip="127.0.0.1", user_agent="bench"),
        )


def drain(*, show_sql=False):
    """Run the worker loop until the queue is empty; return (CPU s, wall s, statements,
    its PostgreSQL backend's CPU s)."""
    wall, backend = time.monotonic(), backend_cpu_seconds()
    cpu, statements = worker_drain(worker_id="bench-subscribe-worker", show_sql=show_sql)
    return cpu, time.monotonic() - wall, statements, backend_cpu_seconds() - backend


def main():
    args = parse_args()
    db_name = f"signalpost_bench_sw_{os.getpid()}"
    logdir = tempfile.mkdtemp(prefix="signalpost-bench-sw-")
    smtp_port, control_port = free_port(), free_port()
    sink = Service(
        "smtp-sink",
        [
            sys.executable,
            str(SUPPORT_DIR / "smtp_sink.py"),
            "--port",
            str(smtp_port),
            "--control-port",
            str(control_port),
        ],
        env=os.environ,
        cwd=REPO_ROOT,
        logdir=logdir,
    )
    pg = pg_connect()
    pg.execute(f'CREATE DATABASE "{db_name}"')
    try:
        configure(db_name, smtp_port)
        from django_tasks_db.models import DBTaskResult

        from signalpost.newsletters.models import Newsletter

        newsletter = Newsletter.objects.create(
            slug="sw", name="Bench Weekly", opt_in=Newsletter.OptIn.DOUBLE, is_public=True
        )
        drains = args.rounds + (1 if args.profile else 0)
        for number in range(drains):
            profiled = args.profile and number == drains - 1
            signups_queue(newsletter, args.signups, tag=f"r{number}")
            before = sink_counts(control_port)["messages"]
            profiler = cProfile.Profile(time.process_time) if profiled else None
            if profiler:
                profiler.enable()
            cpu, wall, statements, backend = drain(show_sql=args.sql)
            if profiler:
                profiler.disable()
            time.sleep(0.3)  # the sink counts what it has accepted
            emails = sink_counts(control_port)["messages"] - before
            tasks = DBTaskResult.objects.filter(status="SUCCESSFUL").count()
            failed = DBTaskResult.objects.exclude(status="SUCCESSFUL").count()
            label = "profiled" if profiled else f"drain {number + 1}"
            print(
                f"{label}: {args.signups} sign-ups, {emails} emails at the sink, "
                f"{tasks} task rows succeeded, {failed} not; worker CPU "
                f"{cpu / args.signups * 1000:.2f} ms per sign-up "
                f"({cpu / max(emails, 1) * 1000:.2f} ms per email), its PostgreSQL backend "
                f"{backend / args.signups * 1000:.2f} ms per sign-up, wall {wall:.1f} s "
                f"({args.signups / wall:.0f} sign-ups/s), "
                f"{statements / args.signups:.1f} statements per sign-up",
                flush=True,
            )
            DBTaskResult.objects.all().delete()
            if profiler:
                profile_print(profiler, tottime=30, cumulative=60)
    finally:
        from django.db import connections

        connections.close_all()
        sink.stop()
        pg.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        pg.close()
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
