"""The task every durable receiver call runs as."""

from typing import TYPE_CHECKING, Any

from django.tasks import TaskContext, task
from django.utils.module_loading import import_string

from signalpost.durable.exceptions import PermanentFailure
from signalpost.durable.payload import payload_load
from signalpost.durable.services import dead_letter_resolved, durable_call_failed
from signalpost.introspection import signal_by_name

if TYPE_CHECKING:
    from signalpost.durable.decorators import DurableReceiver


def _durable_receiver_get(path: str) -> "DurableReceiver":
    """Return the ``DurableReceiver`` at ``path``; raise ``PermanentFailure`` if there is none."""
    try:
        record_call = import_string(path)
    except ImportError as error:
        raise PermanentFailure(f"{path} cannot be imported: {error}") from error
    durable_receiver: DurableReceiver | None = getattr(record_call, "durable_receiver", None)
    if durable_receiver is None:
        raise PermanentFailure(f"{path} is not a durable receiver")
    return durable_receiver


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
        durable_receiver = _durable_receiver_get(receiver)
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
