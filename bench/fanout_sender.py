"""The fan-out's sender in process: CPU per email, its PostgreSQL backend's too, and where it goes.

``bench/fanout.py`` measures two workers from outside, and its rates need a quiet
machine. This script measures what survives load: CPU seconds. It seeds
``--size`` subscribers exactly as fan-out does (``fanout.Signalpost.setup``: the
same issue, production settings, VERP, tracking on), calls ``issue_send()`` and
drains the queue with the worker loop (``BatchWorker``, what ``manage.py db_worker``
runs) in this process, into fan-out's SMTP sink on loopback. It prints this
process's CPU per email, its PostgreSQL backend's (from ``/proc``), the statements
per email, and how the sender's CPU splits between building messages, SMTP, the sent
marks, claiming and the rest (each measured by wrapping that function with a CPU
clock, so the split holds the proportions that cProfile inflates). ``--profile``
adds one more send under cProfile.

    .venv/bin/python bench/fanout_sender.py --size 5000 [--rounds 2] [--profile]

PostgreSQL at ``BENCH_PG_URL`` (a throwaway ``signalpost_bench_fanout_<pid>``, dropped
at the end), Redis at ``BENCH_REDIS_URL``. To compare commits, run it from each
checkout back to back.
"""

import argparse
import cProfile
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from fanout import SUBJECT, Signalpost, Sink, issue_body
from harness import backend_pid, proc_cpu_seconds, profile_print, worker_drain

# What the split times, by label: (module, owner or None, attribute). Nested ones (the
# message build inside the transport's send) are subtracted from their caller's.
SPLIT = [
    ("build: personalise", "signalpost.publishing.rendering", "IssueMessages", "personalise"),
    ("build: as_bytes", "signalpost.mail.messages", "Message", "as_bytes"),
    ("SMTP exchange", "signalpost.mail.transport", None, "smtp_send"),
    ("sent marks", "signalpost.publishing.writes", "SentMarks", "mark"),
    ("  of which settle", "signalpost.publishing.writes", "SentMarks", "settle"),
    ("claim", "signalpost.publishing.tasks", None, "deliveries_claim"),
    ("batch (all of it)", "signalpost.publishing.tasks", None, "batch_send"),
    ("finish check", "signalpost.publishing.tasks", None, "issue_finish_if_done"),
    ("halt checks", "signalpost.publishing.tasks", None, "issue_send_halted"),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=5000, help="subscribers (5000)")
    parser.add_argument("--rounds", type=int, default=2, help="sends measured (2)")
    parser.add_argument("--profile", action="store_true", help="one more send under cProfile")
    return parser.parse_args()


# Run once per batch or less: for these the backend's CPU is read too (from /proc).
PER_BATCH = {"claim", "finish check", "halt checks", "batch (all of it)"}


class Split:
    """CPU seconds inside each of ``SPLIT``'s functions, by label, while installed; for
    ``PER_BATCH`` ones also the PostgreSQL backend's (``backend``: its pid)."""

    def __init__(self, backend):
        self.backend = backend
        self.seconds = {label: 0.0 for label, *_ in SPLIT}
        self.backend_seconds = {label: 0.0 for label in PER_BATCH}
        self.restore = []

    def install(self):
        import importlib

        for label, module_name, owner_name, attribute in SPLIT:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, attribute)
            setattr(owner, attribute, self._timed(label, original))
            self.restore.append((owner, attribute, original))

    def uninstall(self):
        for owner, attribute, original in reversed(self.restore):
            setattr(owner, attribute, original)

    def _timed(self, label, function):
        seconds = self.seconds
        clock = time.process_time
        backend = self.backend if label in PER_BATCH else None

        def timed(*args, **kwargs):
            start = clock()
            backend_start = proc_cpu_seconds(backend) if backend else 0.0
            try:
                return function(*args, **kwargs)
            finally:
                seconds[label] += clock() - start
                if backend:
                    self.backend_seconds[label] += proc_cpu_seconds(backend) - backend_start

        return timed


def send_once(newsletter, *, profiler=None, split=False):
    """Send a new issue to ``newsletter``'s subscribers; return the figures."""

    from signalpost.publishing.models import Delivery, Issue
    from signalpost.publishing.services import issue_create, issue_send

    issue = issue_create(newsletter=newsletter, subject=SUBJECT, body_markdown=issue_body())
    backend = backend_pid()
    backend_before = proc_cpu_seconds(backend)
    split = Split(backend) if split else None
    if split is not None:
        split.install()
    if profiler is not None:
        profiler.enable()
    try:
        issue_send(issue=issue)
        cpu, statements = worker_drain(worker_id="bench-fanout-sender")
    finally:
        if profiler is not None:
            profiler.disable()
        if split is not None:
            split.uninstall()
    backend_cpu = proc_cpu_seconds(backend) - backend_before
    issue.refresh_from_db()
    sent = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT).count()
    return {
        "status": issue.status == Issue.Status.SENT,
        "sent": sent,
        "cpu": cpu,
        "backend": backend_cpu,
        "statements": statements,
        "split": split,
    }


def main():
    args = parse_args()
    logdir = tempfile.mkdtemp(prefix="signalpost-fanout-sender-")
    sink = Sink(logdir)
    options = SimpleNamespace(patch=None, dkim=False)
    signalpost = Signalpost(options, sink=sink, logdir=logdir)
    try:
        signalpost.setup([args.size])
        import signalpost as package

        print(f"code: {Path(package.__file__).parent.parent}", flush=True)
        newsletter = signalpost.newsletters[args.size]
        # The first send warms the process (imports, templates) and is not reported.
        send_once(newsletter)
        print(
            f"{args.size:,} emails per send; CPU ms per email of this process (the sender) "
            "and of its PostgreSQL backend"
        )
        for number in range(args.rounds):
            before = sink.stats()["messages"]
            result = send_once(newsletter, split=True)
            split = result["split"]
            time.sleep(0.3)  # the sink counts what it has accepted
            received = sink.stats()["messages"] - before
            emails = max(1, result["sent"])
            print(
                f"send {number + 1}: {result['sent']:,} sent (issue sent: {result['status']}), "
                f"{received:,} at the sink; sender {1000 * result['cpu'] / emails:.3f} ms, "
                f"PostgreSQL {1000 * result['backend'] / emails:.3f} ms, "
                f"{result['statements'] / emails:.2f} ORM statements per email",
                flush=True,
            )
            seconds = dict(split.seconds)
            batches = seconds.pop("batch (all of it)")
            # The settle runs inside the SMTP exchange (before the data) and the mark.
            rest = batches - sum(
                value for label, value in seconds.items() if label != "  of which settle"
            )
            print("  sender, inside the batches:")
            for label, value in [*seconds.items(), ("the rest of the batches", rest)]:
                print(f"    {label:<24} {1000 * value / emails:6.3f} ms per email")
            outside = result["cpu"] - batches
            print(f"    {'outside the batches':<24} {1000 * outside / emails:6.3f} ms per email")
            backend = split.backend_seconds
            marks = backend["batch (all of it)"] - sum(
                value for label, value in backend.items() if label != "batch (all of it)"
            )
            print("  PostgreSQL backend:")
            for label in ("claim", "finish check", "halt checks"):
                print(f"    {label:<24} {1000 * backend[label] / emails:6.3f} ms per email")
            print(f"    {'the rest of the batches':<24} {1000 * marks / emails:6.3f} (load, marks)")
            outside = result["backend"] - backend["batch (all of it)"]
            print(f"    {'outside the batches':<24} {1000 * outside / emails:6.3f} (preparing)")
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            send_once(newsletter, profiler=profiler)
            profile_print(profiler, tottime=35, cumulative=50)
    finally:
        signalpost.close()
        sink.service.stop()


if __name__ == "__main__":
    sys.exit(main())
