"""Recording, failing, replaying and recovering durable receiver calls."""

import contextlib
import logging
import os
import socket
import traceback
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import IContains
from django.dispatch import Signal
from django.tasks import Task, TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.durable.exceptions import PermanentFailure
from signalpost.durable.models import DeadLetter, WorkerProcess
from signalpost.durable.payload import payload_dump
from signalpost.durable.policy import RetryPolicy
from signalpost.durable.writes import task_insert
from signalpost.introspection import signal_name
from signalpost.redaction import json_mentions, json_rows_forget, text_forget

if TYPE_CHECKING:
    from signalpost.durable.decorators import DurableReceiver

logger = logging.getLogger(__name__)

ERROR_MAX_LENGTH = 20_000

# What forgetting leaves of a running call's arguments (durable_calls_forget).
FORGOTTEN_ARGUMENTS: dict[str, list[object] | dict[str, object]] = {"args": [], "kwargs": {}}


# run_durable_receiver.using(queue_name=..., priority=...), made once per queue and
# priority (using() copies and validates the task: a tenth of an enqueue's CPU).
_tasks_by_queue: dict[tuple[str, int], Task[..., Any]] = {}


# The ids of the durable calls queued while a worker runs a batch (durable_calls_collect).
_calls_queued: ContextVar[list[Any] | None] = ContextVar("durable_calls_queued", default=None)


@contextlib.contextmanager
def durable_calls_collect() -> Iterator[list[Any]]:
    """Collect the ids of the durable calls queued inside the block, in a list.

    The worker runs the calls its tasks queue in the same batch: a sign-up's
    form task and its confirmation email go out together. An id may name a row
    whose transaction rolled back; claiming it then finds nothing.
    """
    queued: list[Any] = []
    token = _calls_queued.set(queued)
    try:
        yield queued
    finally:
        _calls_queued.reset(token)


def durable_call_enqueue(
    *,
    durable_receiver: "DurableReceiver",
    sender: object,
    signal: Signal,
    arguments: dict[str, object],
) -> Any:
    """Record one task that will call ``durable_receiver`` with ``arguments``; return its id.

    Runs in the caller's transaction: the task exists exactly when the
    action that sent the signal committed.
    """
    from signalpost.durable.tasks import run_durable_receiver

    path = durable_receiver.id
    policy = durable_receiver.policy
    key = (policy.queue_name, policy.priority)
    task = _tasks_by_queue.get(key)
    if task is None:
        task = _tasks_by_queue[key] = run_durable_receiver.using(
            queue_name=policy.queue_name, priority=policy.priority
        )
    call = {
        "receiver": path,
        "signal": signal_name(signal),
        "sender": payload_dump(sender, where=f"{path}: sender"),
        "payload": {
            name: payload_dump(value, where=f"{path}: argument {name!r}")
            for name, value in arguments.items()
        },
        "idempotency_key": uuid.uuid4().hex,
        "attempt": 1,
        "dead_letter_id": None,
    }
    task_id = task_enqueue(task, **call)
    queued = _calls_queued.get()
    if queued is not None:
        queued.append(task_id)
    return task_id


def task_enqueue(task: Task[..., Any], **kwargs: Any) -> Any:
    """Queue ``task`` with keyword arguments ``kwargs`` in the caller's transaction; return its id.

    What ``task.enqueue(**kwargs)`` does, for less CPU (``durable.writes.task_insert``).
    """
    return task_insert(task=task, call=kwargs)


def task_enqueue_without_flush(task: Task[..., Any], **kwargs: Any) -> Any:
    """``task_enqueue`` for a task that is harmless to lose in a crash of the database
    server and that a person repeats by themselves (``durability.commit_without_flush``).

    Called outside a transaction on PostgreSQL, the task row is one statement that
    commits on its own without waiting for the disk: one round trip where ``BEGIN``,
    ``SET LOCAL``, ``INSERT`` and ``COMMIT`` took four. Inside a transaction it is
    ``task_enqueue``: the enclosing transaction decides for its writes.
    """
    return task_insert(task=task, call=kwargs, commit_without_flush=True)


@transaction.atomic
def durable_call_failed(
    *,
    task_result_id: Any,
    call: dict[str, Any],
    policy: RetryPolicy | None,
    error: BaseException,
) -> DeadLetter | None:
    """Handle a failed attempt: schedule the next one, or dead-letter the call.

    ``call`` holds the task's keyword arguments. This attempt's task row is
    marked failed in the same transaction, so a worker lost after this point
    cannot run it again beside the retry. Returns the ``DeadLetter`` or ``None``.
    """
    from signalpost.durable.tasks import run_durable_receiver

    now = timezone.now()
    error_text = "".join(traceback.format_exception(error))[-ERROR_MAX_LENGTH:]
    error_class = f"{type(error).__module__}.{type(error).__qualname__}"
    DBTaskResult.objects.filter(id=task_result_id).update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path=error_class,
        traceback=error_text,
    )
    if DBTaskResult.objects.filter(id=task_result_id, args_kwargs=FORGOTTEN_ARGUMENTS).exists():
        # Its person was erased while it ran: a retry or a dead letter would write
        # back the arguments the erasure removed, for a call that can only fail.
        logger.warning("Durable receiver %s failed after an erasure: dropped", call["receiver"])
        return None
    attempt = call["attempt"]
    permanent = isinstance(error, PermanentFailure) or policy is None
    if not permanent and policy is not None and attempt < policy.max_attempts:
        delay = policy.delay_before(attempt + 1)
        run_durable_receiver.using(
            queue_name=policy.queue_name,
            priority=policy.priority,
            run_after=now + timedelta(seconds=delay),
        ).enqueue(**{**call, "attempt": attempt + 1})
        logger.warning(
            "Durable receiver %s failed (attempt %s of %s), retrying in %.1fs: %s",
            call["receiver"],
            attempt,
            policy.max_attempts,
            delay,
            error_class,
        )
        return None
    fields = {
        "receiver": call["receiver"],
        "signal_name": call["signal"],
        "sender": call["sender"],
        "payload": call["payload"],
        "idempotency_key": call["idempotency_key"],
        "queue_name": policy.queue_name if policy else "default",
        "attempts": attempt,
        "error_class": error_class,
        "last_error": error_text,
        "status": DeadLetter.Status.DEAD,
        "failed_at": now,
    }
    dead_letter_id = call.get("dead_letter_id")
    if dead_letter_id and DeadLetter.objects.filter(id=dead_letter_id).update(**fields):
        dead_letter = DeadLetter.objects.get(id=dead_letter_id)
    else:
        dead_letter = DeadLetter.objects.create(**fields)
    logger.error(
        "Durable receiver %s dead-lettered after %s attempt(s): %s (dead letter %s)",
        call["receiver"],
        attempt,
        error_class,
        dead_letter.pk,
    )
    return dead_letter


def dead_letter_resolved(*, dead_letter_id: int) -> None:
    """Mark a replayed dead letter resolved: its replay succeeded."""
    DeadLetter.objects.filter(id=dead_letter_id).update(
        status=DeadLetter.Status.RESOLVED, resolved_at=timezone.now()
    )


@transaction.atomic
def dead_letter_replay(*, dead_letter: DeadLetter) -> bool:
    """Run a dead-lettered call again from its first attempt; return whether it was queued.

    Only dead letters in state ``dead`` replay, so replaying twice queues once.
    The idempotency key stays the same: to the receiver it is the same call.
    """
    from signalpost.durable.tasks import run_durable_receiver

    dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dead_letter.status != DeadLetter.Status.DEAD:
        return False
    run_durable_receiver.using(queue_name=dead_letter.queue_name).enqueue(
        receiver=dead_letter.receiver,
        signal=dead_letter.signal_name,
        sender=dead_letter.sender,
        payload=dead_letter.payload,
        idempotency_key=dead_letter.idempotency_key,
        attempt=1,
        dead_letter_id=dead_letter.pk,
    )
    dead_letter.status = DeadLetter.Status.REPLAYING
    dead_letter.replayed_at = timezone.now()
    dead_letter.replay_count += 1
    dead_letter.save(update_fields=["status", "replayed_at", "replay_count"])
    return True


@transaction.atomic
def durable_calls_forget(
    *,
    texts: Collection[str],
    references: Mapping[str, object],
    waiting_calls_kept: Iterable[Signal] = (),
) -> tuple[int, int, int]:
    """Remove every task row and dead letter that mentions one of ``texts`` or refers to
    one of ``references``; return the numbers of task rows deleted, task rows emptied
    and dead letters deleted.

    ``texts`` are strings to forget (an erased person's address): a call carrying one
    as an argument, or a traceback naming one, goes. ``references`` maps an argument
    name to a primary key (``{"profile": 7}``): a call whose argument of that name is
    the row with that key goes. The caller says what to forget; this module knows
    nothing of what the rows mean.

    Every such call is about what is being forgotten: a waiting one could only act on
    it (most would fail on deleted rows and become dead letters holding the text), and
    a finished one is kept only as a record. A call (or dead letter) whose text is an
    item of a list with other items is about those others too: it stays, without the
    text in its lists (``redaction.json_without``). Two more kinds stay:

    - a running call: its worker would fail to mark a deleted row finished, so only
      its arguments are emptied (the worker has them in memory already). Should it fail,
      ``durable_call_failed`` sees them gone and neither retries nor dead-letters it; if
      its worker is lost, the emptied call fails at once when run again;
    - a waiting call of one of the signals ``waiting_calls_kept`` (the erasure's own
      signal, which carries the text by design so that its receivers can forget it
      elsewhere). Its row keeps the text once it ran.
    """
    mentioning = Q(pk__in=[])
    dead = Q(pk__in=[])
    for text in texts:
        mentioning |= Q(json_mentions("args_kwargs", text=text))
        dead |= Q(json_mentions("payload", text=text))
    referring = Q(pk__in=[])
    dead_referring = Q(pk__in=[])
    for name, pk in references.items():
        referring |= Q(**{f"args_kwargs__kwargs__payload__{name}__pk": pk})
        dead_referring |= Q(**{f"payload__{name}__pk": pk})
    calls = DBTaskResult.objects.filter(mentioning | referring)
    emptied = calls.filter(status=TaskResultStatus.RUNNING).update(args_kwargs=FORGOTTEN_ARGUMENTS)
    # has_key makes the condition false on rows without "signal" (a webhook delivery's);
    # the comparison alone would be NULL there, and NOT NULL keeps a row out of the delete.
    kept_waiting = Q(pk__in=[])
    for signal in waiting_calls_kept:
        kept_waiting |= Q(
            status=TaskResultStatus.READY,
            args_kwargs__kwargs__has_key="signal",
            args_kwargs__kwargs__signal=signal_name(signal),
        )
    waiting_or_done = calls.exclude(status=TaskResultStatus.RUNNING).exclude(kept_waiting)
    deleted = json_rows_forget(
        waiting_or_done, field="args_kwargs", texts=texts, referring=referring
    )
    dead_letters = json_rows_forget(
        DeadLetter.objects.filter(dead | dead_referring),
        field="payload",
        texts=texts,
        referring=dead_referring,
    )
    # Other calls' errors and results may name the text too (a batch's SMTP error): it
    # goes from them, and the calls stay.
    _texts_forget(DBTaskResult.objects.all(), fields=["traceback", "return_value"], texts=texts)
    _texts_forget(DeadLetter.objects.all(), fields=["last_error"], texts=texts)
    return deleted, emptied, dead_letters


def _texts_forget(queryset: QuerySet[Any], *, fields: list[str], texts: Collection[str]) -> None:
    """Replace every whole occurrence of ``texts`` in ``fields`` of ``queryset``'s rows."""
    mentioning = Q(pk__in=[])
    for text in texts:
        for field in fields:
            mentioning |= Q(IContains(Cast(field, TextField()), text))
    for row in queryset.filter(mentioning).only("pk", *fields):
        values = {field: getattr(row, field) for field in fields}
        forgotten = dict(values)
        for text in texts:
            forgotten = {field: text_forget(value, text=text) for field, value in forgotten.items()}
        if forgotten != values:
            queryset.filter(pk=row.pk).update(**forgotten)


@transaction.atomic
def durable_calls_rename(*, name: str, new_id: str) -> tuple[int, int]:
    """Make the calls waiting for receiver ``name`` (and its dead letters) name ``new_id``;
    return the numbers of task rows and dead letters changed.

    For a receiver whose id changed: its queued calls then run under the new id.
    Running calls are left alone (their worker has them in memory already).
    """
    from signalpost.durable.tasks import run_durable_receiver

    rows = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY,
        task_path=run_durable_receiver.module_path,
        args_kwargs__kwargs__receiver=name,
    ).select_for_update()
    renamed = []
    for row in rows:
        row.args_kwargs["kwargs"]["receiver"] = new_id
        renamed.append(row)
    DBTaskResult.objects.bulk_update(renamed, ["args_kwargs"])
    dead_letters = DeadLetter.objects.filter(receiver=name, status=DeadLetter.Status.DEAD).update(
        receiver=new_id
    )
    return len(renamed), dead_letters


@transaction.atomic
def durable_calls_discard(*, name: str) -> tuple[int, int]:
    """Delete the calls waiting for receiver ``name`` and its dead letters; return how many."""
    from signalpost.durable.tasks import run_durable_receiver

    tasks, _ = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY,
        task_path=run_durable_receiver.module_path,
        args_kwargs__kwargs__receiver=name,
    ).delete()
    dead_letters, _ = DeadLetter.objects.filter(
        receiver=name, status=DeadLetter.Status.DEAD
    ).delete()
    return tasks, dead_letters


def worker_register(*, worker_id: str, queues: Iterable[str]) -> WorkerProcess:
    """Record a starting worker and its first heartbeat; return the ``WorkerProcess``."""
    now = timezone.now()
    worker, _ = WorkerProcess.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "queues": ",".join(queues)[:255],
            "started_at": now,
            "heartbeat_at": now,
        },
    )
    return worker


def worker_heartbeat(*, worker_id: str, queues: Iterable[str]) -> None:
    """Say the worker is alive; re-register it if it was taken for dead meanwhile."""
    if not WorkerProcess.objects.filter(worker_id=worker_id).update(heartbeat_at=timezone.now()):
        worker_register(worker_id=worker_id, queues=queues)


def worker_deregister(*, worker_id: str) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).delete()


@transaction.atomic
def orphaned_tasks_requeue(*, lease_seconds: float) -> int:
    """Put back in the queue the running tasks whose worker died; return how many.

    A task is orphaned when it started more than the lease ago and the worker
    that claimed it last has not sent a heartbeat within the lease. A live
    worker's long task is never taken from it.
    """
    now = timezone.now()
    lease = timedelta(seconds=lease_seconds)
    live_workers = set(
        WorkerProcess.objects.filter(heartbeat_at__gte=now - lease).values_list(
            "worker_id", flat=True
        )
    )
    candidates = (
        DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING, started_at__lt=now - lease)
        .select_for_update(skip_locked=True)
        .only("id", "worker_ids")
    )
    orphaned = [
        task.id
        for task in candidates
        if not task.worker_ids or task.worker_ids[-1] not in live_workers
    ]
    if orphaned:
        DBTaskResult.objects.filter(id__in=orphaned).update(
            status=TaskResultStatus.READY, run_after=now, started_at=None
        )
        logger.warning("Requeued %s task(s) whose worker was lost", len(orphaned))
    # Forget workers silent for many leases; their tasks were requeued above.
    WorkerProcess.objects.filter(heartbeat_at__lt=now - 10 * lease).delete()
    return len(orphaned)


TASK_RESULTS_PRUNE_CHUNK = 1000


def task_results_prune(*, older_than: datetime) -> int:
    """Delete task rows that finished (succeeded or failed) before ``older_than``; return
    how many went.

    Waiting, scheduled and running tasks stay, however old; dead letters are
    rows of their own and stay until handled. Deleted a chunk per statement, so
    a large backlog holds no long lock.
    """
    finished = DBTaskResult.objects.finished().filter(finished_at__lt=older_than)
    pruned = 0
    while chunk := list(finished.values_list("pk", flat=True)[:TASK_RESULTS_PRUNE_CHUNK]):
        deleted, _ = DBTaskResult.objects.filter(pk__in=chunk).delete()
        pruned += deleted
    return pruned
