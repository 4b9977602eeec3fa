"""The contract of ``signalpost.durable.writes``: the task row is the one ``enqueue`` writes."""

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.tasks.signals import task_enqueued
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult, get_date_max

from signalpost.durable import writes as durable_writes
from signalpost.durable.tasks import run_durable_receiver
from signalpost.newsletters.receivers import email_confirmation_request
from signalpost.newsletters.services import subscribe
from tests.durable_helpers import run_worker_until_idle
from tests.row_helpers import Heard, assert_recent, row

CONFIRMATION = email_confirmation_request.durable_receiver


def subscribe_and_capture_the_confirmation_task(monkeypatch, newsletter, email):
    """Subscribe to a double opt-in ``newsletter``; return the confirmation task's row id
    and what ``task_enqueued`` was sent with. Fails unless the fast path wrote the row."""
    fast_path_ids = []
    original = durable_writes.task_row_insert

    def spy(**kwargs):
        fast_path_ids.append(original(**kwargs))
        return fast_path_ids[-1]

    monkeypatch.setattr(durable_writes, "task_row_insert", spy)
    with Heard(task_enqueued) as enqueued, transaction.atomic():
        subscribe(email=email, newsletter=newsletter, source="form")
    [task_id] = [
        pk
        for pk in fast_path_ids
        if DBTaskResult.objects.get(pk=pk).args_kwargs["kwargs"]["receiver"] == CONFIRMATION.id
    ]
    return task_id, enqueued.calls


@pytest.mark.django_db
def test_a_durable_call_writes_the_task_row_enqueue_writes(monkeypatch, double_opt_in_newsletter):
    fast_id, enqueued = subscribe_and_capture_the_confirmation_task(
        monkeypatch, double_opt_in_newsletter, "ann@example.com"
    )
    written_by_subscribe = {str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)}
    fast = DBTaskResult.objects.get(pk=fast_id)
    call = {**fast.args_kwargs["kwargs"], "idempotency_key": "another key"}
    by_enqueue = run_durable_receiver.using(
        queue_name=CONFIRMATION.policy.queue_name, priority=CONFIRMATION.policy.priority
    ).enqueue(**call)

    def comparable(pk):
        values = row(DBTaskResult, pk, leave_out=("id", "enqueued_at"))
        del values["args_kwargs"]["kwargs"]["idempotency_key"]
        return values

    assert comparable(fast_id) == comparable(by_enqueue.id)
    assert fast.status == TaskResultStatus.READY
    assert fast.run_after == get_date_max(), "django-tasks-db's pre_save receiver set it"
    assert_recent(fast.enqueued_at)
    assert len(fast.args_kwargs["kwargs"]["idempotency_key"]) == 32
    assert fast.args_kwargs["kwargs"]["attempt"] == 1

    # Each task row the subscribe wrote was announced once, as enqueue announces it.
    assert sorted(call["task_result"].id for call in enqueued) == sorted(written_by_subscribe)
    [announced] = [call for call in enqueued if call["task_result"].id == str(fast_id)]
    assert announced["sender"] is DatabaseBackend
    assert announced["task_result"].status == TaskResultStatus.READY
    assert announced["task_result"].kwargs == fast.args_kwargs["kwargs"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_task_the_fast_path_wrote(
    monkeypatch, smtp_inbox, double_opt_in_newsletter
):
    task_id, _ = subscribe_and_capture_the_confirmation_task(
        monkeypatch, double_opt_in_newsletter, "ann@example.com"
    )

    run_worker_until_idle()

    assert DBTaskResult.objects.get(pk=task_id).status == TaskResultStatus.SUCCESSFUL
    [confirmation] = smtp_inbox.wait_for(1)
    assert confirmation["To"] == "ann@example.com"


@pytest.mark.django_db
def test_the_task_result_of_a_row_read_back_is_the_one_django_tasks_db_builds(
    double_opt_in_newsletter,
):
    with transaction.atomic():
        subscribe(email="ann@example.com", newsletter=double_opt_in_newsletter, source="form")
    for stored in DBTaskResult.objects.all():
        theirs = stored.task_result
        ours = durable_writes.task_result_build(row=stored, task=stored.task, read=True)
        for name in ("id", "status", "enqueued_at", "args", "kwargs", "backend", "worker_ids"):
            assert getattr(ours, name) == getattr(theirs, name), name
        assert ours.task.module_path == theirs.task.module_path
