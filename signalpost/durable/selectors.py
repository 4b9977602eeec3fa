"""Reads of the task queue, dead letters and workers."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from signalpost.durable.decorators import durable_receiver_find
from signalpost.durable.models import DeadLetter, WorkerProcess


def queue_status(*, lease_seconds: float | None = None) -> dict[str, Any]:
    """Return a dict describing the queue now: counts by state, oldest waiting task, workers.

    ``waiting`` tasks can run now; ``scheduled`` ones (retries in backoff) later.
    """
    now = timezone.now()
    lease = timedelta(seconds=lease_seconds or settings.SIGNALPOST_WORKER_LEASE_SECONDS)
    runnable = Q(run_after__lte=now) | Q(run_after=get_date_max())
    ready = Q(status=TaskResultStatus.READY)
    tasks = DBTaskResult.objects.aggregate(
        waiting=Count("id", filter=ready & runnable),
        scheduled=Count("id", filter=ready & ~runnable),
        running=Count("id", filter=Q(status=TaskResultStatus.RUNNING)),
        succeeded=Count("id", filter=Q(status=TaskResultStatus.SUCCESSFUL)),
        failed=Count("id", filter=Q(status=TaskResultStatus.FAILED)),
        oldest_waiting_enqueued_at=Min("enqueued_at", filter=ready & runnable),
    )
    oldest = tasks.pop("oldest_waiting_enqueued_at")
    dead_letters = dict.fromkeys(DeadLetter.Status.values, 0)
    dead_letters.update(
        DeadLetter.objects.values_list("status").annotate(count=Count("id")).order_by()
    )
    workers = [
        {
            "worker_id": worker.worker_id,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "queues": worker.queues,
            "started_at": worker.started_at,
            "heartbeat_at": worker.heartbeat_at,
            "alive": worker.heartbeat_at >= now - lease,
        }
        for worker in WorkerProcess.objects.all()
    ]
    return {
        "now": now,
        "tasks": tasks,
        "oldest_waiting": {
            "enqueued_at": oldest,
            "age_seconds": (now - oldest).total_seconds() if oldest else None,
        },
        "dead_letters": dead_letters,
        "workers": workers,
        "workers_alive": sum(worker["alive"] for worker in workers),
        "lease_seconds": lease.total_seconds(),
    }


def workers_alive_besides(worker: WorkerProcess, *, lease_seconds: float | None = None) -> bool:
    """Return whether a worker other than ``worker`` has a fresh heartbeat."""
    lease = timedelta(seconds=lease_seconds or settings.SIGNALPOST_WORKER_LEASE_SECONDS)
    return (
        WorkerProcess.objects.exclude(pk=worker.pk)
        .filter(heartbeat_at__gte=timezone.now() - lease)
        .exists()
    )


def durable_calls_unknown() -> dict[str, int]:
    """Return ``{name: count}`` of calls waiting or running, and dead letters kept, whose
    receiver name (id, or import path of the old form) no durable receiver answers to."""
    from signalpost.durable.tasks import run_durable_receiver

    names: dict[str, int] = {}
    waiting = (
        DBTaskResult.objects.filter(
            status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING],
            task_path=run_durable_receiver.module_path,
        )
        .values_list("args_kwargs__kwargs__receiver")
        .annotate(count=Count("id"))
        .order_by()
    )
    dead = (
        DeadLetter.objects.filter(status=DeadLetter.Status.DEAD)
        .values_list("receiver")
        .annotate(count=Count("id"))
        .order_by()
    )
    for name, count in [*waiting, *dead]:
        if isinstance(name, str) and durable_receiver_find(name) is None:
            names[name] = names.get(name, 0) + count
    return names
