"""Durable receivers that take their calls in batches (``@durable_receiver(..., batch=True)``).

Such a receiver is called once with every call of it that a worker claimed
together, as a list of ``DurableCall``; it returns the errors of the calls that
failed, by idempotency key (or raises, failing them all). Each failed call is
retried or dead-lettered on its own, exactly as a single call would be; the
others succeeded. The subscription emails are batch receivers: a batch renders
each person's email and sends them all over one SMTP connection.

A plain task may have a batch form too (``task_batch_runner``): the worker then
calls it once with the arguments of every call of that task it claimed together.
The form's sign-ups are written that way (``newsletters.tasks``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal
from django_tasks_db.models import DBTaskResult

from signalpost.durable.decorators import DurableReceiver, durable_receiver_find
from signalpost.durable.exceptions import PermanentFailure
from signalpost.durable.payload import payload_load
from signalpost.durable.services import dead_letter_resolved, durable_call_failed
from signalpost.introspection import signal_by_name

RUN_DURABLE_RECEIVER = "signalpost.durable.tasks.run_durable_receiver"

type Row = DBTaskResult[Any, Any]
# Given each call's keyword arguments, runs them all; returns the failed ones' errors by index.
type TaskBatchRunner = Callable[[list[dict[str, Any]]], Mapping[int, BaseException]]

# A plain task's module path (what its rows name) -> its batch form (task_batch_runner).
TASK_BATCH_RUNNERS: dict[str, TaskBatchRunner] = {}


def task_batch_runner(task: Any) -> Callable[[TaskBatchRunner], TaskBatchRunner]:
    """Declare the decorated function the batch form of the plain ``task``::

        @task_batch_runner(subscribe_from_form)
        def subscribe_from_form_batch(calls):
            ...

    The worker calls it with the keyword arguments of every call of ``task`` it claimed
    together (a list), instead of the task once per call; it returns the errors of
    the calls that failed, by their index in the list, and must leave each call as
    the task alone would have (its retry queued, its signals sent once). If it raises,
    every call of the batch fails with that error, without retries.
    """

    def decorate(function: TaskBatchRunner) -> TaskBatchRunner:
        TASK_BATCH_RUNNERS[task.module_path] = function
        return function

    return decorate


def task_batch_run(runner: TaskBatchRunner, rows: list[Row]) -> dict[Any, BaseException]:
    """Run the claimed ``rows`` of one plain task by its batch form; return the errors by
    task row id."""
    try:
        failures = runner([row.args_kwargs["kwargs"] for row in rows])
    except Exception as error:
        return dict.fromkeys((row.id for row in rows), error)
    return {rows[index].id: error for index, error in failures.items()}


@dataclass(frozen=True)
class DurableCall:
    """One call of a batch receiver: what a single receiver gets as its arguments."""

    sender: Any
    signal: Signal
    arguments: Mapping[str, Any]
    idempotency_key: str
    attempt: int


def durable_batches_split(
    rows: list[DBTaskResult[Any, Any]],
) -> tuple[
    list[DBTaskResult[Any, Any]], list[tuple[DurableReceiver, list[DBTaskResult[Any, Any]]]]
]:
    """Split claimed task rows into those run one by one and the batches of batch receivers."""
    singles = []
    batches: dict[str, tuple[DurableReceiver, list[Row]]] = {}
    for row in rows:
        kwargs = row.args_kwargs.get("kwargs", {})
        name = kwargs.get("receiver") if row.task_path == RUN_DURABLE_RECEIVER else None
        found = durable_receiver_find(name) if isinstance(name, str) else None
        if found is None or not found.batch:
            singles.append(row)
            continue
        batches.setdefault(found.id, (found, []))[1].append(row)
    return singles, list(batches.values())


def durable_batches_run(
    durable_receiver: DurableReceiver, rows: list[DBTaskResult[Any, Any]]
) -> dict[Any, BaseException]:
    """Call a batch receiver with the calls of ``rows``; retry or dead-letter each failed one.

    Returns the errors by task row id. A call whose arguments cannot be read (a row
    deleted since) fails alone, before the receiver is called.
    """
    policy = durable_receiver.policy
    errors: dict[Any, BaseException] = {}
    calls: dict[str, tuple[DBTaskResult[Any, Any], DurableCall]] = {}
    for row in rows:
        kwargs = row.args_kwargs["kwargs"]
        try:
            # As in run_durable_receiver: a call that kills every worker running it
            # must not be rerun forever.
            if len(row.worker_ids) > policy.max_attempts:
                raise PermanentFailure(
                    f"the worker running this call was lost {len(row.worker_ids) - 1} times"
                )
            try:
                signal = signal_by_name(kwargs["signal"])
            except LookupError as error:
                raise PermanentFailure(str(error)) from error
            call = DurableCall(
                sender=payload_load(kwargs["sender"]),
                signal=signal,
                arguments=payload_load(kwargs["payload"]),
                idempotency_key=kwargs["idempotency_key"],
                attempt=kwargs["attempt"],
            )
        except Exception as error:
            errors[row.id] = error
            continue
        calls[call.idempotency_key] = (row, call)
    if calls:
        try:
            failures = durable_receiver.function([call for _, call in calls.values()]) or {}
        except Exception as batch_error:
            failures = dict.fromkeys(calls, batch_error)
        for key, failure in failures.items():
            if key in calls:
                errors[calls[key][0].id] = failure
    for row in rows:
        kwargs = row.args_kwargs["kwargs"]
        if row.id in errors:
            durable_call_failed(
                task_result_id=row.id, call=kwargs, policy=policy, error=errors[row.id]
            )
        elif kwargs.get("dead_letter_id"):
            dead_letter_resolved(dead_letter_id=kwargs["dead_letter_id"])
    return errors
