"""Running workers from tests: in this process, or as real ``db_worker`` processes."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult

from signalpost.durable.models import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent


def run_worker_until_idle(*extra):
    """Run a worker in this process until no task is ready, then restore signal handlers."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        call_command(
            "db_worker",
            "--batch",
            "--no-reload",
            "--no-startup-delay",
            "--interval=0",
            *extra,
            verbosity=0,
            stdout=StringIO(),
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


# A time no waiting task reaches (django-tasks-db's own "no run_after" is the year 9999).
_ASIDE = datetime(9000, 1, 1, tzinfo=UTC)


def run_form_requests():
    """Run the queued work of the public forms (subscribe, unsubscribe, preference link)
    and nothing else: what those pages did inline before they queued it. The emails
    waiting, and those it queues in turn, stay queued.

    Emails run ahead of form tasks in a worker (``newsletters.receivers.EMAIL_PRIORITY``),
    so the other waiting tasks are set aside (their ``run_after`` moved to ``_ASIDE``) while
    a worker runs as many tasks as there are forms waiting: it claims them in one batch.
    """
    forms = "signalpost.newsletters.tasks."
    waiting = DBTaskResult.objects.ready().filter(task_path__startswith=forms).count()
    if not waiting:
        return
    others = DBTaskResult.objects.ready().exclude(task_path__startswith=forms)
    aside = list(others.values_list("id", "run_after"))
    DBTaskResult.objects.filter(id__in=[pk for pk, _ in aside]).update(run_after=_ASIDE)
    try:
        run_worker_until_idle(f"--max-tasks={waiting}")
    finally:
        for pk, run_after in aside:
            DBTaskResult.objects.filter(id=pk).update(run_after=run_after)


def database_url_of_test_database():
    """Return a DATABASE_URL naming the database the tests run on."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    credentials = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings['NAME']}"


def start_worker(worker_id, test_dir, *extra):
    """Start a real ``manage.py db_worker`` process on the test database; return it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_database(),
        "SIGNALPOST_TEST_DIR": str(test_dir),
        "PYTHONUNBUFFERED": "1",
        "DURABLE_RECEIVER_MODULES": "tests.durable_receivers",
    }
    output = open(Path(test_dir) / f"{worker_id}.out", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval=0.1",
            f"--worker-id={worker_id}",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def workers_send_to_inbox(settings, monkeypatch, *, batch_size, rate_per_second):
    """Point the worker processes a test starts (``start_worker``) at its SMTP sink
    (``smtp_inbox``), sending batches of ``batch_size`` at ``rate_per_second``; the batch
    size holds in this process too."""
    settings.SIGNALPOST_SEND_BATCH_SIZE = batch_size
    port = settings.MAILERS["default"]["OPTIONS"]["port"]
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SEND_BATCH_SIZE", str(batch_size))
    monkeypatch.setenv("SEND_RATE_PER_SECOND", str(rate_per_second))


def wait_for(condition, *, timeout, interval=0.1, what="condition"):
    """Poll ``condition`` until it returns something truthy; return that, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process, sig=signal.SIGTERM, timeout=30):
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def kill_mid_way_and_restart(tmp_path, smtp_inbox, *, recipients, done, what, may_double=1):
    """Start a worker, SIGKILL it once 40 messages reached ``smtp_inbox``, start another
    until ``done()``; then check every one of ``recipients`` got the email and at most
    ``may_double`` of them (the messages in flight) came twice. Returns the envelopes'
    recipients, counted."""
    first = start_worker("first", tmp_path, "--lease=2")
    try:
        wait_for(lambda: len(smtp_inbox.envelopes) >= 40, timeout=60, what="40 messages")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first, signal.SIGKILL)
    assert len(smtp_inbox.envelopes) < recipients, "killed mid-way"

    second = start_worker("second", tmp_path, "--lease=2")
    try:
        wait_for(done, timeout=120, what=what)
        # Stopped once it runs its loop (SIGTERM before that, during Django's start,
        # would end it with the signal's status however well it behaves).
        wait_for(
            lambda: WorkerProcess.objects.filter(worker_id="second").exists(),
            timeout=60,
            what="the second worker to register",
        )
        time.sleep(0.5)
    finally:
        assert stop(second) == 0

    received = Counter(envelope.rcpt_tos[0] for envelope in smtp_inbox.envelopes)
    assert len(received) == recipients, "nobody lost"
    doubled = [address for address, count in received.items() if count > 1]
    assert len(doubled) <= may_double, f"only the messages in flight may be doubled: {doubled}"
    return received
