"""Automations: N people enter a two-step sequence at once; how fast is every first email out?

Run from the repository root (one benchmark at a time on the machine)::

    flock /tmp/bench.lock .venv/bin/python bench/automations.py                 # 20,000 people
    flock /tmp/bench.lock .venv/bin/python bench/automations.py --people 100000

Side by side in one run, on one fresh PostgreSQL database (``bench/fanout.py``'s
``Signalpost`` harness: production settings, Redis cache, 2 fresh ``db_worker`` processes
per column, the same SMTP sink process that accepts and discards):

1. **Fan-out**: one issue to the N subscribers (``issue_send``), until it is sent.
2. **Automation**: the same N people enter a two-step sequence (an email, a day's wait, an
   email) at once, the way an import does it: ``enroll_subscribed`` in transactions of
   1,000 people (one per import batch), with 2 fresh workers already running (started
   before the clock, as the fan-out's are); until every first-step email is marked sent.

Reported for each: emails per second end to end (from the first enrolling transaction,
or the click, to the last message marked sent), the task rows created (goal: in
proportion to batches of ``SEND_BATCH_SIZE``, not to people), each worker's peak RSS
(``VmHWM``), and the sink's count. Goal (issue #23): the automation at least 80 % of the
fan-out's rate, measured in the same run.

And the web page meanwhile: ``signalpost serve`` (granian, production settings,
``WEB_CONCURRENCY=2``, no task worker of its own) on the same database, and a small
closed-loop GET load on its home page ``/`` all along (``page_load.py``: 2 clients, each
pausing 0.1 s after every answer, so at most 20 requests a second; 127.0.0.1 only). Its
p50 and p99 are reported for each column's timed window, and for a few seconds before the
first with nothing sending (idle). ``--no-web`` leaves the server and the load out.

The end of the automation's window is read from the deliveries (the last ``sent_at``),
so the wait for it polls once a second: a count of the sent deliveries every 0.2 s
read a few million rows of the table being written at 100,000 people.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import BackendMeter, Signalpost, Sink, print_profiles, proc_status_kb
from harness import Service, free_port, own_cpu_seconds, proc_cpu_seconds
from page_load import PageLoad
from production import wait_for_200

ENROLL_CHUNK = 1000
IDLE_SECONDS = 5


def automation_run(harness, size):
    """N people enter a two-step sequence; fresh workers send every first email."""
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from signalpost.automations.services import (
        automation_activate,
        automation_create,
        enroll_subscribed,
    )
    from signalpost.newsletters.models import Subscription
    from signalpost.publishing.models import Delivery

    newsletter = harness.newsletters[size]
    body = harness.issues[(size, "")].body_markdown
    automation = automation_create(
        newsletter=newsletter,
        name="Two steps",
        trigger="subscribed",
        trigger_sources=["import"],
        steps=[
            {"kind": "email", "config": {"subject": "Step one", "body_markdown": body}},
            {"kind": "wait", "config": {"seconds": 86400}},
            {"kind": "email", "config": {"subject": "Step two", "body_markdown": body}},
        ],
    )
    automation_activate(automation=automation)
    first = automation.steps.get(position=0).issue
    profile_ids = list(
        Subscription.objects.filter(newsletter=newsletter)
        .order_by("profile_id")
        .values_list("profile_id", flat=True)
    )
    tasks_before = DBTaskResult.objects.count()
    harness.sink.reset()
    # Running before the first enrollment, as the fan-out's are before its click (and
    # as a site's are when an import arrives): their start-up is not the engine's time.
    workers = harness.start_workers("automation")
    own_backend = backend_pid()
    # The workers' backends, as the fan-out column meters them (not the enrolling's own).
    meter = BackendMeter(harness.db_name, exclude=[own_backend])
    meter.begin()
    worker_cpu = [proc_cpu_seconds(worker.pid) for worker in workers]
    enroll_cpu = own_cpu_seconds() + proc_cpu_seconds(own_backend)
    started = time.time()
    sent = Delivery.objects.filter(issue=first, status=Delivery.Status.SENT)
    try:
        for index in range(0, len(profile_ids), ENROLL_CHUNK):
            with transaction.atomic():
                enroll_subscribed(
                    newsletter=newsletter,
                    profile_ids=profile_ids[index : index + ENROLL_CHUNK],
                    source="import",
                )
        enrolled = time.time() - started
        enroll_cpu = own_cpu_seconds() + proc_cpu_seconds(own_backend) - enroll_cpu
        deadline = time.monotonic() + harness.args.timeout
        while sent.count() < size:
            for worker in workers:
                if not worker.alive():
                    raise SystemExit(f"worker {worker.name} died:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise SystemExit("the first step did not reach everyone in time")
            meter.sample()
            time.sleep(1.0)
        meter.sample()
        worker_cpu = [
            proc_cpu_seconds(worker.pid) - before
            for worker, before in zip(workers, worker_cpu, strict=True)
        ]
        peak_kb = [proc_status_kb(worker.pid, "VmHWM") for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    last = max(sent.values_list("sent_at", flat=True))
    total = last.timestamp() - started
    return {
        "rate": size / total,
        "total": total,
        "window": (started, last.timestamp()),
        "enrolled": enrolled,
        "enroll_cpu": enroll_cpu,
        # Until the last first-step email: the share of the second step's wait, recorded
        # with each batch, is in; what the workers did after the poll saw it is not.
        "sender_cpu_ms": 1000 * sum(worker_cpu) / size,
        "pg_cpu_ms": 1000 * meter.seconds() / size,
        "tasks": DBTaskResult.objects.count() - tasks_before,
        "peak_mb": [kb / 1024 for kb in peak_kb],
        "sink": harness.sink.stats().get("messages"),
    }


def backend_pid():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def fanout_run(harness, size):
    from django.db.models import Max
    from django_tasks_db.models import DBTaskResult

    from signalpost.publishing.models import Delivery

    before = DBTaskResult.objects.count()
    result = harness.send(size)
    issue = harness.issues[(size, "")]
    last = Delivery.objects.filter(issue=issue).aggregate(last=Max("sent_at"))["last"]
    return {
        "rate": result["rate"],
        "total": result["total"],
        # From the click (``total`` before the last message) to the last message.
        "window": (last.timestamp() - result["total"], last.timestamp()),
        "tasks": DBTaskResult.objects.count() - before,
        "peak_mb": result["peak_mb"],
        "sink": result["sink"].get("messages"),
        "sender_cpu_ms": result["sender_cpu_ms"],
        "pg_cpu_ms": result["pg_cpu_ms"],
    }


def web_start(harness, logdir):
    """``signalpost serve`` on the benchmark's database, without task workers of its own;
    return it and the home page's address once that answers 200."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **harness.env,
        "SIGNALPOST_ADDRESS": address,
        "WEB_CONCURRENCY": "2",
        "TASK_WORKERS": "0",
        "STATIC_ROOT": str(Path(logdir) / "static"),
    }
    argv = [sys.executable, "-m", "signalpost.cli", "serve"]
    server = Service("web", argv, env=env, logdir=logdir)
    url = f"http://{address}/"
    wait_for_200(url, service=server)
    return server, url


def web_figures(load, idle, fanout, automation):
    """The page's figures in each window, or None without the web load."""
    if load is None:
        return None
    return {
        "idle": load.figures(*idle),
        "fanout": load.figures(*fanout["window"]),
        "automation": load.figures(*automation["window"]),
    }


def print_web(web):
    print("\nGET / (production server, 2 clients each pausing 0.1 s) during each column, ms:")
    print("| window | requests | non-200 | p50 | p99 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = {
        "idle": f"idle, {IDLE_SECONDS} s before",
        "fanout": "fan-out",
        "automation": "automation",
    }
    for key, label in labels.items():
        row = web[key]
        if not row["requests"]:
            print(f"| {label} | 0 | - | - | - |")
            continue
        print(
            f"| {label} | {row['requests']:,} | {row['failed']:,} | "
            f"{row['p50']:.1f} | {row['p99']:.1f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--profile", metavar="DIR", help="run the workers under cProfile; print the automation's"
    )
    parser.add_argument(
        "--no-web", action="store_true", help="no web server and no page load meanwhile"
    )
    args = parser.parse_args()
    # What fanout.Signalpost reads of its arguments, beyond these.
    args.patch = args.dkim = args.start_only = None
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    args.pause_at = None
    logdir = tempfile.mkdtemp(prefix="bench-automations-")
    sink = Sink(logdir)
    harness = Signalpost(args, sink=sink, logdir=logdir)
    server = load = None
    try:
        harness.setup([args.people])
        if not args.no_web:
            server, url = web_start(harness, logdir)
            load = PageLoad(url, logdir)
            time.sleep(1)  # the server's first answers (connections, caches) are not idle
            idle_start = time.time()
            time.sleep(IDLE_SECONDS)
            idle = (idle_start, time.time())
        fanout = fanout_run(harness, args.people)
        automation = automation_run(harness, args.people)
        web = web_figures(load, idle if load else None, fanout, automation)
        batch = harness.batch_size()
    finally:
        for service in (load, server):
            if service is not None:
                service.stop()
        harness.close()
        sink.service.stop()
    print(f"{args.people:,} people, {args.workers} workers, SEND_BATCH_SIZE {batch}")
    print(f"| {'':32} | {'fan-out (issue)':>16} | {'automation, step 1':>18} |")
    print(f"| {'-' * 32} | {'-' * 16}: | {'-' * 18}: |")
    rows = [
        ("emails/s end to end", "{:,.0f}", "rate"),
        ("seconds to the last email", "{:,.1f}", "total"),
        ("task rows created", "{:,}", "tasks"),
        ("messages the sink took", "{:,}", "sink"),
        ("workers' CPU ms per email", "{:.2f}", "sender_cpu_ms"),
        ("their PostgreSQL CPU ms per email", "{:.2f}", "pg_cpu_ms"),
    ]
    for label, pattern, key in rows:
        left = pattern.format(fanout[key]) if fanout[key] is not None else "-"
        right = pattern.format(automation[key]) if automation[key] is not None else "-"
        print(f"| {label:32} | {left:>16} | {right:>18} |")
    peaks = [", ".join(f"{mb:.0f}" for mb in run["peak_mb"]) for run in (fanout, automation)]
    print(f"| {'peak worker RSS (MB)':32} | {peaks[0]:>16} | {peaks[1]:>18} |")
    enrolled = automation["enrolled"]
    print(
        f"enrolling {args.people:,} in transactions of {ENROLL_CHUNK:,}: {enrolled:.1f} s "
        f"({automation['enroll_cpu']:.1f} CPU s: this process and its PostgreSQL backend)"
    )
    print(f"automation / fan-out rate: {automation['rate'] / fanout['rate']:.2f} (goal >= 0.80)")
    if web is not None:
        print_web(web)
    if args.profile:
        # The automation's workers only (the fan-out's are named for the size).
        automation_dir = Path(args.profile) / "automation"
        automation_dir.mkdir(exist_ok=True)
        for path in Path(args.profile).glob("worker-automation-*.pstats"):
            path.rename(automation_dir / path.name)
        print_profiles(automation_dir)


if __name__ == "__main__":
    main()
