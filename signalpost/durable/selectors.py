"""Reads of the task queue, dead letters and workers."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from signalpost.conf import conf
from signalpost.durable.decorators import durable_receiver_find
from signalpost.durable.models import DeadLetter, WorkerProcess


def queue_status(*, lease_seconds: float | None = None) -> dict[str, Any]:
    """Return a dict describing the queue now: counts by state, oldest waiting task, workers.

    ``waiting`` tasks can run now; ``scheduled`` ones (retries in backoff) later.
    """
    now = timezone.now()
    lease = timedelta(seconds=lease_seconds or conf.WORKER_LEASE_SECONDS)
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
        "metrics": queue_metrics(),
    }


def workers_alive_besides(worker: WorkerProcess, *, lease_seconds: float | None = None) -> bool:
    """Return whether a worker other than ``worker`` has a fresh heartbeat."""
    lease = timedelta(seconds=lease_seconds or conf.WORKER_LEASE_SECONDS)
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


METRICS_WINDOW_SECONDS = 300
LATENCY_SAMPLE_MAX = 10_000


def _percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``; ``None`` if there are none."""
    if not values:
        return None
    rank = max(1, -(-len(values) * fraction // 1))
    return values[int(rank) - 1]


def _wait_seconds(
    enqueued_at: datetime, run_after: datetime, started_at: datetime | None, date_max: datetime
) -> float:
    """Seconds from when a task could first run to when it started."""
    ready_at = run_after if date_max > run_after > enqueued_at else enqueued_at
    if started_at is None:
        return 0.0
    return max(0.0, (started_at - ready_at).total_seconds())


def queue_metrics(*, window_seconds: float = METRICS_WINDOW_SECONDS) -> dict[str, Any]:
    """Return the queue's recent rates: tasks finished per second per receiver, the wait
    from enqueue to start (p50, p99) and the backlog per queue.

    A durable call counts under its receiver's id, any other task under its path. The
    wait runs from when the task could first run (enqueued, or its ``run_after`` when
    later: a retry's backoff is not waiting) to when a worker claimed it; over the
    last ``LATENCY_SAMPLE_MAX`` tasks started in the window.
    """
    now = timezone.now()
    since = now - timedelta(seconds=window_seconds)
    finished = (
        DBTaskResult.objects.filter(finished_at__gte=since)
        .values("task_path", "args_kwargs__kwargs__receiver")
        .annotate(
            tasks=Count("id"),
            failed=Count("id", filter=Q(status=TaskResultStatus.FAILED)),
        )
        .order_by()
    )
    throughput: dict[str, dict[str, Any]] = {}
    for row in finished:
        receiver = row["args_kwargs__kwargs__receiver"]
        name = receiver if isinstance(receiver, str) else row["task_path"]
        entry = throughput.setdefault(name, {"name": name, "tasks": 0, "failed": 0})
        entry["tasks"] += row["tasks"]
        entry["failed"] += row["failed"]
    for entry in throughput.values():
        entry["per_second"] = round(entry["tasks"] / window_seconds, 3)
    date_max = get_date_max()
    started = DBTaskResult.objects.filter(started_at__gte=since).order_by("-started_at")
    waits = sorted(
        _wait_seconds(enqueued_at, run_after, started_at, date_max)
        for enqueued_at, run_after, started_at in started.values_list(
            "enqueued_at", "run_after", "started_at"
        )[:LATENCY_SAMPLE_MAX]
    )
    runnable = Q(run_after__lte=now) | Q(run_after=date_max)
    backlog = [
        {
            "queue_name": row["queue_name"],
            "waiting": row["waiting"],
            "oldest_age_seconds": (now - row["oldest"]).total_seconds(),
        }
        for row in DBTaskResult.objects.filter(runnable, status=TaskResultStatus.READY)
        .values("queue_name")
        .annotate(waiting=Count("id"), oldest=Min("enqueued_at"))
        .order_by("queue_name")
    ]
    return {
        "window_seconds": window_seconds,
        "throughput": sorted(throughput.values(), key=lambda entry: -entry["tasks"]),
        "latency": {
            "tasks": len(waits),
            "p50_seconds": _percentile(waits, 0.50),
            "p99_seconds": _percentile(waits, 0.99),
        },
        "backlog": backlog,
    }
