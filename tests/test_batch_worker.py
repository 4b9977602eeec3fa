"""The worker claims tasks in batches: in priority, then run_after, then enqueue order;
successes recorded per batch; batch receivers called once per batch."""

import datetime
import json

import pytest
from django.db import connection
from django.tasks import TaskResultStatus
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from signalpost.durable.models import DeadLetter
from signalpost.durable.tasks import run_durable_receiver
from signalpost.durable.worker import BatchSize, BatchWorker
from tests.durable_helpers import run_worker_until_idle
from tests.durable_receivers import batch_probe, probe, read_log
from tests.factories import make_profile

pytestmark = pytest.mark.django_db(transaction=True)


def labels(test_dir, event="ran"):
    return [line["label"] for line in read_log(test_dir) if line["event"] == event]


def queue(label, *, priority=0, run_after=None):
    profile = make_profile()
    task = run_durable_receiver.using(priority=priority, run_after=run_after)
    return task.enqueue(
        receiver="tests.record_probe",
        signal="test_probe",
        sender=None,
        payload={"profile": {"$model": "accounts.profile", "pk": profile.pk}, "label": label},
        idempotency_key=label,
        attempt=1,
        dead_letter_id=None,
    ).id


def worker(**options):
    return BatchWorker(
        worker_id="w",
        queue_names=["default"],
        excluded_queue_names=[],
        backend_name="default",
        interval=0,
        max_batch_size=options.get("max_batch_size", 100),
        exit_when_idle=True,
        max_tasks=None,
    )


def test_tasks_run_by_priority_then_run_after_then_enqueue_order(test_dir):
    now = timezone.now()
    queue("low")
    queue("plain-1")
    queue("due-earlier", run_after=now - datetime.timedelta(seconds=5))
    queue("plain-2")
    queue("high", priority=10)
    queue("later", run_after=now + datetime.timedelta(hours=1))
    run_worker_until_idle()
    # run_after "not set" is stored as the far future: set and due sorts first.
    assert labels(test_dir) == ["high", "due-earlier", "low", "plain-1", "plain-2"]
    assert (
        DBTaskResult.objects.get(status=TaskResultStatus.READY).args_kwargs["kwargs"][
            "idempotency_key"
        ]
        == "later"
    ), "a task scheduled later waits"


def test_one_transaction_claims_the_batch_and_one_update_records_its_successes(test_dir):
    for number in range(20):
        queue(f"ok#{number}")
    batch_worker = worker()
    rows = batch_worker.claim(20)
    assert len(rows) == 20
    assert DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).count() == 20
    assert all(ids == ["w"] for ids in DBTaskResult.objects.values_list("worker_ids", flat=True))
    outcomes = [batch_worker.run_task(row) for row in rows]
    with CaptureQueriesContext(connection) as queries:
        batch_worker.record(outcomes)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 20


def test_a_failure_in_a_batch_fails_only_its_own_task(test_dir):
    queue("ok#1")
    queue("always-fail")
    queue("ok#2")
    run_worker_until_idle()
    states = {
        row.args_kwargs["kwargs"]["idempotency_key"]: row.status
        for row in DBTaskResult.objects.filter(args_kwargs__kwargs__attempt=1)
    }
    assert states == {
        "ok#1": TaskResultStatus.SUCCESSFUL,
        "always-fail": TaskResultStatus.FAILED,
        "ok#2": TaskResultStatus.SUCCESSFUL,
    }
    assert DeadLetter.objects.get().attempts == 3


def test_the_batch_size_follows_the_time_tasks_take():
    size = BatchSize(max_size=100)
    assert size.next() == 10
    size.observe(tasks=10, seconds=0.01)
    assert size.next() == 100, "fast tasks: the largest batch"
    for _ in range(5):
        size.observe(tasks=2, seconds=1.0)
    assert size.next() == 1, "slow tasks: one at a time"


def test_a_loaded_machine_does_not_shrink_the_batches_of_cheap_tasks():
    size = BatchSize(max_size=100)
    for _ in range(5):
        # 5 ms of CPU per task, but 20 ms by the clock: the cores are shared.
        size.observe(tasks=10, seconds=0.2, cpu_seconds=0.05)
    assert size.next() == 100
    for _ in range(5):
        # Tasks that wait (a slow relay): little CPU, but a batch holds them all.
        size.observe(tasks=2, seconds=2.0, cpu_seconds=0.002)
    assert size.next() == 2, "at most max_wall_seconds of waiting per batch"


def test_a_batch_receiver_gets_the_claimed_calls_at_once_and_fails_them_one_by_one(test_dir):
    profile = make_profile()
    for label in ("ok#1", "fail", "ok#2"):
        batch_probe.send(sender=None, profile=profile, label=label)
    probe.send(sender=None, profile=profile, label="ok#single")
    run_worker_until_idle()
    log = read_log(test_dir)
    sizes = [line["size"] for line in log if line["event"] == "batch"]
    assert sizes == [3, 1], "one call with the three, then the retry of the failed one alone"
    assert labels(test_dir).count("fail") == 2, "max_attempts=2"
    assert DeadLetter.objects.get().receiver == "tests.record_batch"
    assert DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 3


def test_a_batch_receiver_that_raises_fails_every_call_of_the_batch(test_dir):
    profile = make_profile()
    for label in ("fail-all", "ok"):
        batch_probe.send(sender=None, profile=profile, label=label)
    run_worker_until_idle()
    assert DeadLetter.objects.count() == 2


def test_a_batch_call_whose_row_was_deleted_fails_alone(test_dir):
    doomed = make_profile()
    batch_probe.send(sender=None, profile=doomed, label="gone")
    batch_probe.send(sender=None, profile=make_profile(), label="ok")
    doomed.delete()
    run_worker_until_idle()
    assert labels(test_dir) == ["ok"]
    dead = DeadLetter.objects.get()
    assert dead.attempts == 1, "a permanent failure: no retry"


def test_a_batch_receivers_calls_run_at_their_turn_in_priority_order(test_dir):
    profile = make_profile()
    batch_probe.send(sender=None, profile=profile, label="batch#1")
    queue("urgent", priority=10)
    batch_probe.send(sender=None, profile=profile, label="batch#2")
    run_worker_until_idle()
    assert labels(test_dir) == ["urgent", "batch#1", "batch#2"]


def claim_plans(batch_worker, size, ids=None):
    """The plans PostgreSQL chose for the claim's SELECT ... FOR UPDATE, as it ran."""
    plans = []

    def explain(execute, sql, params, many, context):
        if sql.startswith("SELECT") and "FOR UPDATE" in sql:
            with context["connection"].cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plans.append(json.dumps(cursor.fetchone()[0]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        rows = batch_worker.claim(size, ids=ids)
    return rows, plans


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner is PostgreSQL's")
def test_a_claim_on_a_table_without_statistics_reads_along_an_index_not_the_whole_queue():
    # A burst: thousands of due tasks written before autovacuum analyzed the table.
    DBTaskResult.objects.bulk_create(
        DBTaskResult(
            args_kwargs={"args": [], "kwargs": {"n": number}},
            priority=0,
            task_path="tests.tasks.nothing",
            queue_name="default",
            backend_name="default",
            run_after=get_date_max(),
        )
        for number in range(3000)
    )
    batch_worker = worker()

    rows, [plan] = claim_plans(batch_worker, 50)
    assert len(rows) == 50
    assert "tasks_db_new_ordering_idx" in plan
    assert "Bitmap" not in plan and '"Sort"' not in plan, plan

    wanted = list(DBTaskResult.objects.filter(status="READY").values_list("id", flat=True)[:20])
    rows, [plan] = claim_plans(batch_worker, 50, ids=wanted)
    assert sorted(str(row.id) for row in rows) == sorted(str(pk) for pk in wanted)
    assert "Bitmap" not in plan, plan

    # The settings lasted for the claim's statement only.
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_bitmapscan")
        assert cursor.fetchone()[0] == "on"
