"""Real ``db_worker`` processes: crash recovery, graceful shutdown, sharing the queue."""

import signal
import time
from collections import Counter

import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from signalpost.durable.models import WorkerProcess
from tests.durable_helpers import start_worker, stop, wait_for
from tests.durable_receivers import probe, read_log
from tests.factories import make_profile

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = "--lease=2"


def events(test_dir, event):
    return [line for line in read_log(test_dir) if line["event"] == event]


def test_a_task_of_a_killed_worker_is_finished_by_another_after_the_lease(tmp_path):
    probe.send(sender=None, profile=make_profile(), label="slow-once")
    first = start_worker("doomed", tmp_path, LEASE)
    try:
        wait_for(lambda: events(tmp_path, "sleeping"), timeout=60, what="the task to start")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        task = DBTaskResult.objects.get()
        assert task.status == TaskResultStatus.RUNNING, "the dead worker left it running"

        second = start_worker("rescuer", tmp_path, LEASE)
        try:
            wait_for(
                lambda: DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL,
                timeout=60,
                what="the rescuer to finish the task",
            )
        finally:
            assert stop(second) == 0
    finally:
        stop(first, signal.SIGKILL)

    task = DBTaskResult.objects.get()
    assert task.worker_ids == ["doomed", "rescuer"]
    done = events(tmp_path, "done")
    assert len(done) == 1
    ran = events(tmp_path, "ran")
    assert len(ran) == 2 and ran[0]["key"] == ran[1]["key"], "the rerun has the same key"
    assert not WorkerProcess.objects.filter(worker_id="rescuer").exists(), "deregistered"


def test_a_live_workers_long_task_is_not_taken_from_it(tmp_path):
    probe.send(sender=None, profile=make_profile(), label="sleep:5")
    busy = start_worker("busy", tmp_path, LEASE)
    watcher = None
    try:
        wait_for(lambda: events(tmp_path, "ran"), timeout=60, what="the task to start")
        watcher = start_worker("watcher", tmp_path, LEASE)
        wait_for(lambda: events(tmp_path, "done"), timeout=60, what="the task to finish")
    finally:
        stop(busy)
        if watcher:
            stop(watcher)
    assert len(events(tmp_path, "ran")) == 1
    assert DBTaskResult.objects.get().worker_ids == ["busy"]


def test_sigterm_lets_the_current_task_finish_then_exits(tmp_path):
    probe.send(sender=None, profile=make_profile(), label="sleep:2")
    worker = start_worker("graceful", tmp_path, LEASE)
    try:
        wait_for(lambda: events(tmp_path, "ran"), timeout=60, what="the task to start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        stop(worker, signal.SIGKILL)
    assert len(events(tmp_path, "done")) == 1
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL
    assert WorkerProcess.objects.count() == 0


TASKS = 1000


def test_two_workers_draining_a_thousand_tasks_run_each_exactly_once(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SKIP LOCKED): run with DATABASE_URL=postgres://...")
    profile = make_profile()
    with transaction.atomic():
        for number in range(TASKS):
            probe.send(sender=None, profile=profile, label=f"sleep:0.002#{number}")
    workers = [start_worker(f"drain-{n}", tmp_path, "--batch") for n in (1, 2)]
    started = time.monotonic()
    try:
        for worker in workers:
            assert worker.wait(timeout=300) == 0
    finally:
        for worker in workers:
            stop(worker, signal.SIGKILL)

    ran = events(tmp_path, "ran")
    runs_per_key = Counter(line["key"] for line in ran)
    assert len(runs_per_key) == TASKS
    assert set(runs_per_key.values()) == {1}, "no task ran twice"
    assert DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == TASKS
    by_worker = Counter(line["pid"] for line in ran)
    assert len(by_worker) == 2, f"both workers took tasks: {by_worker}"
    print(f"{TASKS} tasks in {time.monotonic() - started:.1f}s, split {sorted(by_worker.values())}")


def test_db_worker_refuses_a_nonsense_lease():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    for lease in ("0", "-1", "soon", "inf"):
        with pytest.raises(CommandError, match="lease"):
            call_command("db_worker", f"--lease={lease}", "--batch", "--no-reload")


def send_probes(*labels):
    """Send a probe per label, one transaction each (so enqueue order is send order)."""
    profile = make_profile()
    for label in labels:
        probe.send(sender=None, profile=profile, label=label)


def test_a_worker_killed_mid_batch_reruns_only_what_it_had_not_recorded(tmp_path):
    # Batches of 2: [a, b] is recorded, then [slow, c] is claimed and the worker dies
    # in "slow", after nothing of that batch was recorded.
    send_probes("ok#a", "ok#b", "slow-once", "ok#c", "ok#d")
    first = start_worker("doomed", tmp_path, LEASE, "--batch-size=2")
    try:
        wait_for(lambda: events(tmp_path, "sleeping"), timeout=60, what="the slow task")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        states = Counter(DBTaskResult.objects.values_list("status", flat=True))
        assert states == {
            TaskResultStatus.SUCCESSFUL: 2,
            TaskResultStatus.RUNNING: 2,
            TaskResultStatus.READY: 1,
        }, "the first batch is recorded, the second claimed, the last waiting"

        second = start_worker("rescuer", tmp_path, LEASE)
        try:
            wait_for(
                lambda: (
                    DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 5
                ),
                timeout=60,
                what="the rescuer to finish every task",
            )
        finally:
            assert stop(second) == 0
    finally:
        stop(first, signal.SIGKILL)

    runs = Counter(line["label"] for line in events(tmp_path, "ran"))
    assert runs == {"ok#a": 1, "ok#b": 1, "slow-once": 2, "ok#c": 1, "ok#d": 1}
    keys = [line["key"] for line in events(tmp_path, "ran") if line["label"] == "slow-once"]
    assert keys[0] == keys[1], "the rerun has the same idempotency key"
    assert Counter(line["label"] for line in events(tmp_path, "done")) == {
        "ok#a": 1,
        "ok#b": 1,
        "slow-once": 1,
        "ok#c": 1,
        "ok#d": 1,
    }


def test_sigterm_mid_batch_records_what_ran_and_puts_the_rest_back(tmp_path):
    send_probes("sleep:2", "ok#after-1", "ok#after-2")
    worker = start_worker("graceful", tmp_path, LEASE, "--batch-size=3")
    try:
        wait_for(lambda: events(tmp_path, "ran"), timeout=60, what="the first task")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        stop(worker, signal.SIGKILL)
    assert [line["label"] for line in events(tmp_path, "done")] == ["sleep:2"]
    rows = {
        row.args_kwargs["kwargs"]["payload"]["label"]: row for row in DBTaskResult.objects.all()
    }
    assert rows["sleep:2"].status == TaskResultStatus.SUCCESSFUL
    for label in ("ok#after-1", "ok#after-2"):
        assert rows[label].status == TaskResultStatus.READY, "back in the queue"
        assert rows[label].worker_ids == [], "not counted as an attempt"
