"""Workers prune old finished task rows and webhook messages themselves: no cron needed."""

import uuid
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.durable.maintenance import chore_due, chores_forget
from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from tests.durable_helpers import start_worker, stop, wait_for

DAY = timedelta(days=1)


def task_row(*, status, finished_days_ago=None, run_after=None):
    now = timezone.now()
    row = DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        task_path="tests.nowhere.task",
        queue_name="default",
        backend_name="default",
        run_after=run_after or now,
        finished_at=now - finished_days_ago * DAY if finished_days_ago is not None else None,
        exception_class_path="",
        traceback="",
    )
    return row.pk


def webhook_message(endpoint, *, status, age_days):
    message = WebhookMessage.objects.create(
        endpoint=endpoint,
        event="subscriber.subscribed",
        event_id=str(uuid.uuid4()),
        payload={},
        status=status,
    )
    WebhookAttempt.objects.create(message=message, number=1, status_code=200)
    WebhookMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - age_days * DAY)
    return message.pk


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_prunes_old_finished_rows_and_keeps_the_rest(tmp_path):
    old_tasks = [
        task_row(status=TaskResultStatus.SUCCESSFUL, finished_days_ago=20),
        task_row(status=TaskResultStatus.FAILED, finished_days_ago=20),
    ]
    kept_tasks = [
        task_row(status=TaskResultStatus.SUCCESSFUL, finished_days_ago=2),
        # A retry waiting in backoff, however old, is still work to do.
        task_row(status=TaskResultStatus.READY, run_after=timezone.now() + 30 * DAY),
    ]
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/in")
    old_message = webhook_message(endpoint, status="delivered", age_days=40)
    kept_messages = [
        webhook_message(endpoint, status="pending", age_days=40),
        webhook_message(endpoint, status="delivered", age_days=5),
    ]

    worker = start_worker("pruner", tmp_path)
    try:
        wait_for(
            lambda: (
                not DBTaskResult.objects.filter(pk__in=old_tasks).exists()
                and not WebhookMessage.objects.filter(pk=old_message).exists()
            ),
            timeout=60,
            what="the worker to prune",
        )
    finally:
        assert stop(worker) == 0
    assert DBTaskResult.objects.filter(pk__in=kept_tasks).count() == 2
    assert WebhookMessage.objects.filter(pk__in=kept_messages).count() == 2
    assert not WebhookAttempt.objects.filter(message_id=old_message).exists()


def test_a_chore_runs_once_per_interval_across_workers(settings):
    chores_forget()
    assert chore_due("sweep", every=3600) is True
    assert chore_due("sweep", every=3600) is False  # this process, later
    chores_forget()  # another process: the shared cache says it is done
    assert chore_due("sweep", every=3600) is False
    assert chore_due("sweep", every=0) is False  # 0 turns it off
