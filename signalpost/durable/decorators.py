"""``@durable``: make a signal receiver run in the worker, after commit, with retries."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import durable_call_enqueue


@dataclass(frozen=True)
class DurableReceiver:
    """What the worker needs to run a durable receiver: the function and its policy."""

    function: Callable[..., Any]
    path: str
    policy: RetryPolicy


def durable(
    function: Callable[..., Any] | None = None,
    *,
    max_attempts: int = 5,
    backoff_base: float = 10.0,
    backoff_max: float = 3600.0,
    queue_name: str = "default",
    only_if: Callable[..., bool] | None = None,
) -> Any:
    """Declare a receiver durable. Put it under ``@receiver``::

        @receiver(user_subscribed, dispatch_uid="emails.welcome")
        @durable(max_attempts=8)
        def email_welcome(sender, *, profile, newsletter, idempotency_key, attempt, **kwargs):
            ...

    When the signal is sent, the receiver does not run: one task is recorded in
    the sender's transaction, with the arguments serialised (model instances by
    primary key). A rollback leaves nothing; after commit a worker calls the
    function with the same arguments plus ``idempotency_key`` (the same on every
    retry and rerun of this call) and ``attempt`` (1, 2, ...). Delivery is at least
    once: use the key to make a rerun harmless.

    ``only_if``, given the signal's arguments, decides at send time whether to
    record the call at all: a welcome email receiver skips imports without
    queueing a task per imported row.
    """
    policy = RetryPolicy(
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        queue_name=queue_name,
    )

    def decorate(function: Callable[..., Any]) -> Callable[..., None]:
        if "<locals>" in function.__qualname__:
            raise TypeError(f"durable receiver {function.__qualname__} must be module-level")
        durable_receiver = DurableReceiver(
            function=function,
            path=f"{function.__module__}.{function.__qualname__}",
            policy=policy,
        )

        @functools.wraps(function)
        def record_call(sender: Any, signal: Signal, **arguments: Any) -> None:
            if only_if is not None and not only_if(**arguments):
                return
            durable_call_enqueue(
                durable_receiver=durable_receiver, sender=sender, signal=signal, arguments=arguments
            )

        # What the worker and `manage.py signals` read off a connected receiver.
        record_call.durable_policy = policy  # type: ignore[attr-defined]
        record_call.durable_receiver = durable_receiver  # type: ignore[attr-defined]
        return record_call

    if function is not None:
        return decorate(function)
    return decorate
