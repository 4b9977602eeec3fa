"""``@durable_receiver``: a signal receiver that runs in the worker, after commit, with retries.

Every durable receiver has a declared id (like ``dispatch_uid``), and its queued
calls carry that id, not the function's import path: moving or renaming the
function leaves the calls already queued runnable. ``DURABLE_RECEIVERS`` maps
ids to receivers; ``durable_receiver_find`` also reads calls queued before ids
existed (by import path).
"""

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal
from django.utils.module_loading import import_string

from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import durable_call_enqueue


@dataclass(frozen=True)
class DurableReceiver:
    """What the worker needs to run a durable receiver: its id, the function and its policy.

    ``id`` is what a queued call names; ``path`` (``module.function``) is where the
    function lives today, kept to run calls queued under the old form. A ``batch``
    receiver takes a list of ``DurableCall`` at once (``durable.batches``).
    ``declared`` is false for the old ``@durable`` form, whose id is its path.
    """

    id: str
    function: Callable[..., Any]
    path: str
    policy: RetryPolicy
    batch: bool = False
    declared: bool = True
    formerly: tuple[str, ...] = field(default=())


# id -> receiver, for every durable receiver declared so far (modules import at ready()).
DURABLE_RECEIVERS: dict[str, DurableReceiver] = {}
# Old names (import paths, ``formerly`` ids) -> receiver: the compatibility read.
_FORMER_NAMES: dict[str, DurableReceiver] = {}
# Declarations whose id another receiver had already taken (reported by the checks).
DUPLICATES: list[tuple[DurableReceiver, DurableReceiver]] = []
# Every wrapper made, to tell which were never connected to a signal (checks).
DECLARED_WRAPPERS: list[Callable[..., Any]] = []
# Inside only_if_answers_kept() (a worker's batch): what each ``only_if`` declared
# ``only_if_per_batch`` answered, by function.
_only_if_answers: ContextVar[dict[Callable[..., bool], bool] | None] = ContextVar(
    "only_if_answers", default=None
)


@contextlib.contextmanager
def only_if_answers_kept() -> Iterator[None]:
    """Inside the block, ask each ``only_if`` declared ``only_if_per_batch`` once and keep
    its answer: a worker's batch sends a signal per sign-up, and the webhook receivers'
    "does any endpoint exist?" is then one cache read per batch, not one per sign-up."""
    token = _only_if_answers.set({})
    try:
        yield
    finally:
        _only_if_answers.reset(token)


def _only_if_allows(
    only_if: Callable[..., bool], per_batch: bool, arguments: dict[str, Any]
) -> bool:
    answers = _only_if_answers.get() if per_batch else None
    if answers is None:
        return only_if(**arguments)
    answer = answers.get(only_if)
    if answer is None:
        answer = answers[only_if] = bool(only_if(**arguments))
    return answer


def _register(durable_receiver: DurableReceiver) -> None:
    existing = DURABLE_RECEIVERS.get(durable_receiver.id)
    if existing is not None and existing.path != durable_receiver.path:
        DUPLICATES.append((existing, durable_receiver))
        return
    DURABLE_RECEIVERS[durable_receiver.id] = durable_receiver
    for name in (durable_receiver.path, *durable_receiver.formerly):
        if name != durable_receiver.id:
            _FORMER_NAMES[name] = durable_receiver


def durable_receiver_find(name: str) -> DurableReceiver | None:
    """Return the receiver a queued call names, or ``None``: by id, else by a former name
    or import path (calls queued before ids existed name the function's path)."""
    found = DURABLE_RECEIVERS.get(name) or _FORMER_NAMES.get(name)
    if found is not None:
        return found
    try:
        record_call = import_string(name)
    except ImportError:
        return None
    return getattr(record_call, "durable_receiver", None)


def _wrap(
    durable_receiver: DurableReceiver,
    only_if: Callable[..., bool] | None,
    only_if_per_batch: bool = False,
) -> Any:
    function = durable_receiver.function

    @functools.wraps(function)
    def record_call(sender: Any, signal: Signal, **arguments: Any) -> None:
        if only_if is not None and not _only_if_allows(only_if, only_if_per_batch, arguments):
            return
        durable_call_enqueue(
            durable_receiver=durable_receiver, sender=sender, signal=signal, arguments=arguments
        )

    if durable_receiver.batch:
        # Its signature (calls) is not a receiver's; the wrapper's (**arguments) is.
        del record_call.__wrapped__
    # What the worker, the checks and `manage.py signals` read off a connected receiver.
    record_call.durable_policy = durable_receiver.policy  # type: ignore[attr-defined]
    record_call.durable_receiver = durable_receiver  # type: ignore[attr-defined]
    DECLARED_WRAPPERS.append(record_call)
    return record_call


def _policy(
    max_attempts: int,
    backoff_base: float,
    backoff_max: float,
    queue_name: str,
    priority: int = 0,
) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        queue_name=queue_name,
        priority=priority,
    )


def _path(function: Callable[..., Any]) -> str:
    if "<locals>" in function.__qualname__:
        raise TypeError(f"durable receiver {function.__qualname__} must be module-level")
    return f"{function.__module__}.{function.__qualname__}"


def durable_receiver(
    signal: Signal,
    *,
    id: str,
    sender: Any = None,
    max_attempts: int = 5,
    backoff_base: float = 10.0,
    backoff_max: float = 3600.0,
    queue_name: str = "default",
    priority: int = 0,
    only_if: Callable[..., bool] | None = None,
    only_if_per_batch: bool = False,
    batch: bool = False,
    formerly: Iterable[str] = (),
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a durable receiver of ``signal`` named ``id`` and connect it::

        @durable_receiver(user_subscribed, id="emails.welcome", max_attempts=8)
        def email_welcome(sender, *, profile, newsletter, idempotency_key, attempt, **kwargs):
            ...

    When the signal is sent, the receiver does not run: one task is recorded in
    the sender's transaction, naming ``id`` (also the ``dispatch_uid``), with the
    arguments serialised (model instances by primary key). A rollback leaves
    nothing; after commit a worker calls the function with the same arguments
    plus ``idempotency_key`` (the same on every retry and rerun of this call) and
    ``attempt`` (1, 2, ...). Delivery is at least once: use the key to make a
    rerun harmless.

    ``only_if``, given the signal's arguments, decides at send time whether to
    record the call at all. ``only_if_per_batch``: ``only_if`` reads none of the
    arguments, so a worker asks it once per batch (``only_if_answers_kept``) and
    keeps the answer for the batch. With ``batch=True`` the function instead takes
    ``calls`` (a list of ``durable.batches.DurableCall``) and returns the failed
    ones' errors by idempotency key (``durable.batches``). ``formerly`` lists ids
    this receiver had before, so calls queued under them still run here.
    ``priority`` (-100 to 100) orders its calls among the tasks due in its queue.
    """
    if not id or not isinstance(id, str) or len(id) > 200:
        raise TypeError("durable_receiver needs id=, a string of at most 200 characters")
    policy = _policy(max_attempts, backoff_base, backoff_max, queue_name, priority)

    def decorate(function: Callable[..., Any]) -> Any:
        declared = DurableReceiver(
            id=id,
            function=function,
            path=_path(function),
            policy=policy,
            batch=batch,
            formerly=tuple(formerly),
        )
        _register(declared)
        record_call = _wrap(declared, only_if, only_if_per_batch)
        signal.connect(record_call, sender=sender, weak=False, dispatch_uid=id)
        return record_call

    return decorate


def durable(
    function: Callable[..., Any] | None = None,
    *,
    max_attempts: int = 5,
    backoff_base: float = 10.0,
    backoff_max: float = 3600.0,
    queue_name: str = "default",
    only_if: Callable[..., bool] | None = None,
) -> Any:
    """The old form, under ``@receiver``: its calls name its import path. Use
    ``@durable_receiver(signal, id=...)``; ``manage.py check`` reports every use
    (``durable.W001``), and a ``@durable`` over ``@receiver`` that never got
    connected (``durable.E004``).
    """
    policy = _policy(max_attempts, backoff_base, backoff_max, queue_name)

    def decorate(function: Callable[..., Any]) -> Any:
        path = _path(function)
        declared = DurableReceiver(
            id=path, function=function, path=path, policy=policy, declared=False
        )
        _register(declared)
        return _wrap(declared, only_if)

    if function is not None:
        return decorate(function)
    return decorate
