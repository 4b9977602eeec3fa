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
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import Signalpost, Sink, print_profiles, proc_status_kb

ENROLL_CHUNK = 1000


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
        deadline = time.monotonic() + harness.args.timeout
        while sent.count() < size:
            for worker in workers:
                if not worker.alive():
                    raise SystemExit(f"worker {worker.name} died:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise SystemExit("the first step did not reach everyone in time")
            time.sleep(0.2)
        peak_kb = [proc_status_kb(worker.pid, "VmHWM") for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    last = max(sent.values_list("sent_at", flat=True))
    total = last.timestamp() - started
    return {
        "rate": size / total,
        "total": total,
        "enrolled": enrolled,
        "tasks": DBTaskResult.objects.count() - tasks_before,
        "peak_mb": [kb / 1024 for kb in peak_kb],
        "sink": harness.sink.stats().get("messages"),
    }


def fanout_run(harness, size):
    from django_tasks_db.models import DBTaskResult

    before = DBTaskResult.objects.count()
    result = harness.send(size)
    return {
        "rate": result["rate"],
        "total": result["total"],
        "tasks": DBTaskResult.objects.count() - before,
        "peak_mb": result["peak_mb"],
        "sink": result["sink"].get("messages"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--profile", metavar="DIR", help="run the workers under cProfile; print the automation's"
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
    try:
        harness.setup([args.people])
        fanout = fanout_run(harness, args.people)
        automation = automation_run(harness, args.people)
        batch = harness.batch_size()
    finally:
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
    ]
    for label, pattern, key in rows:
        left = pattern.format(fanout[key]) if fanout[key] is not None else "-"
        right = pattern.format(automation[key]) if automation[key] is not None else "-"
        print(f"| {label:32} | {left:>16} | {right:>18} |")
    peaks = [", ".join(f"{mb:.0f}" for mb in run["peak_mb"]) for run in (fanout, automation)]
    print(f"| {'peak worker RSS (MB)':32} | {peaks[0]:>16} | {peaks[1]:>18} |")
    enrolled = automation["enrolled"]
    print(f"enrolling {args.people:,} in transactions of {ENROLL_CHUNK:,}: {enrolled:.1f} s")
    print(f"automation / fan-out rate: {automation['rate'] / fanout['rate']:.2f} (goal >= 0.80)")
    if args.profile:
        # The automation's workers only (the fan-out's are named for the size).
        automation_dir = Path(args.profile) / "automation"
        automation_dir.mkdir(exist_ok=True)
        for path in Path(args.profile).glob("worker-automation-*.pstats"):
            path.rename(automation_dir / path.name)
        print_profiles(automation_dir)


if __name__ == "__main__":
    main()
