"""Task rows written without django-tasks-db's ``enqueue`` machinery.

This is the durable app's persistence module, the one place that writes
django-tasks-db's table directly; services call ``task_insert`` and never look
at the backend themselves. The row written is the one ``enqueue`` writes; the
contract tests in ``tests/test_durable_writes.py`` hold it to that.
"""

from typing import Any

from django.tasks import Task, TaskResultStatus
from django.tasks.signals import task_enqueued
from django_tasks_db.backend import DatabaseBackend, TaskResult
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import normalize_uuid

from signalpost.rows import row_insert


def task_insert(
    *, task: Task[..., Any], call: dict[str, Any], commit_without_flush: bool = False
) -> Any:
    """Queue ``task`` with keyword arguments ``call`` in the caller's transaction; return its id.

    What ``task.enqueue(**call)`` does: by ``task_row_insert`` on django-tasks-db
    (unless it is configured with its own ``id_function``), by ``enqueue`` elsewhere.
    ``commit_without_flush``: see ``rows.row_insert`` (django-tasks-db only).
    """
    backend = task.get_backend()
    if type(backend) is DatabaseBackend and not backend.options.get("id_function"):
        return task_row_insert(
            task=task, backend=backend, call=call, commit_without_flush=commit_without_flush
        )
    return task.enqueue(**call).id


def task_row_insert(
    *,
    task: Task[..., Any],
    backend: DatabaseBackend,
    call: dict[str, Any],
    commit_without_flush: bool = False,
) -> Any:
    """Write the row django-tasks-db's ``enqueue`` writes, by one plain INSERT.

    Every subscribe, confirmation and unsubscribe records a task, and the
    backend's ``enqueue`` spends ~0.3 ms of CPU around its INSERT (normalising
    the arguments, ``Model.save()``, building the ``TaskResult``). The same row
    and the same ``task_enqueued`` signal, for about a third of that. Inside
    ``rows.rows_deferred()`` (a batch of sign-ups) the row is written at the block's end,
    with the batch's others, still in the caller's transaction.
    """
    backend.validate_task(task)
    row: DBTaskResult[Any, Any] = DBTaskResult(
        args_kwargs={"args": [], "kwargs": call},
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        # None becomes "no time set" in the model's pre_save, as in enqueue.
        run_after=task.run_after,  # type: ignore[misc]
        backend_name=backend.alias,
    )
    row_insert(row, deferrable=True, commit_without_flush=commit_without_flush)
    task_enqueued.send(type(backend), task_result=task_result_build(row=row, task=task))
    return row.id


def task_result_build(
    *, row: DBTaskResult[Any, Any], task: Task[..., Any], read: bool = False
) -> TaskResult[..., Any]:
    """Return ``row.task_result`` for a row of ``task``, without importing the task by its
    path and copying it again (``row.task``), which costs more than the rest.

    ``read``: the row was read from the database, so its arguments are decoded JSON
    already, which ``TaskResult`` would only walk through again (``normalize_json``:
    ~4 % of a worker's CPU per sign-up, bench/subscribe_worker.py --profile).
    """
    arguments = row.args_kwargs
    task_result = TaskResult(
        db_result=row,
        task=task,
        id=normalize_uuid(row.id),
        status=TaskResultStatus[row.status],
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        last_attempted_at=row.started_at,
        finished_at=row.finished_at,
        args=[] if read else arguments["args"],
        kwargs={} if read else arguments["kwargs"],
        backend=row.backend_name,
        errors=[],
        worker_ids=row.worker_ids,
    )
    if read:
        object.__setattr__(task_result, "args", arguments["args"])
        object.__setattr__(task_result, "kwargs", arguments["kwargs"])
    object.__setattr__(task_result, "_return_value", row.return_value)
    return task_result
