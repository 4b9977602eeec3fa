"""The task every durable receiver call runs as."""

from typing import Any

from django.tasks import TaskContext, task

from signalpost.durable.decorators import DurableReceiver, durable_receiver_find
from signalpost.durable.exceptions import PermanentFailure
from signalpost.durable.payload import payload_load
from signalpost.durable.services import dead_letter_resolved, durable_call_failed
from signalpost.introspection import signal_by_name


def durable_receiver_get(name: str) -> DurableReceiver:
    """Return the ``DurableReceiver`` a call names; raise ``PermanentFailure`` if there is none.

    ``name`` is the receiver's declared id, or, for a call queued before ids
    existed, the import path of its function (the compatibility read).
    """
    found = durable_receiver_find(name)
    if found is None:
        raise PermanentFailure(
            f"no durable receiver has the id {name!r} (manage.py check says what to do)"
        )
    return found


@task(takes_context=True)
def run_durable_receiver(
    context: TaskContext[..., None],
    *,
    receiver: str,
    signal: str,
    sender: Any,
    payload: dict[str, Any],
    idempotency_key: str,
    attempt: int,
    dead_letter_id: int | None,
) -> None:
    """Call one durable receiver for one sent signal; on failure retry or dead-letter it."""
    call = {
        "receiver": receiver,
        "signal": signal,
        "sender": sender,
        "payload": payload,
        "idempotency_key": idempotency_key,
        "attempt": attempt,
        "dead_letter_id": dead_letter_id,
    }
    policy = None
    try:
        durable_receiver = durable_receiver_get(receiver)
        policy = durable_receiver.policy
        # context.attempt counts the claims of this task row: more than one
        # means a worker died running it. A call that kills every worker
        # running it must not be rerun forever.
        if context.attempt > policy.max_attempts:
            raise PermanentFailure(
                f"the worker running this call was lost {context.attempt - 1} times"
            )
        try:
            signal_object = signal_by_name(signal)
        except LookupError as error:
            raise PermanentFailure(str(error)) from error
        durable_receiver.function(
            payload_load(sender),
            signal=signal_object,
            idempotency_key=idempotency_key,
            attempt=attempt,
            **payload_load(payload),
        )
    except Exception as error:
        durable_call_failed(
            task_result_id=context.task_result.id, call=call, policy=policy, error=error
        )
        raise
    if dead_letter_id:
        dead_letter_resolved(dead_letter_id=dead_letter_id)
