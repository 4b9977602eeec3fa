"""System checks (``manage.py check``) of durable receivers and of the calls queued for them.

- ``durable.W001``: a durable receiver without an id (the old ``@durable`` form; it
  works, its calls naming its import path);
- ``durable.E002``: two durable receivers with the same id;
- ``durable.W003``: calls queued (or dead letters kept) for an id no receiver has. A
  warning, not an error: an error would stop every command, the worker included,
  for calls that wait harmlessly until they are renamed or discarded;
- ``durable.E004``: a ``@durable`` function that is connected to no signal (the
  decorators in the wrong order: the signal would run the receiver inline).
"""

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DatabaseError

from signalpost.dispatch import DeclaredSignal
from signalpost.durable.decorators import DECLARED_WRAPPERS, DUPLICATES, DURABLE_RECEIVERS
from signalpost.durable.selectors import durable_calls_unknown
from signalpost.introspection import DJANGO_SIGNALS, dereference


@register("signals")
def durable_receivers_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report receivers without ids, duplicate ids and durable functions never connected."""
    errors: list[CheckMessage] = []
    for durable_receiver in DURABLE_RECEIVERS.values():
        if not durable_receiver.declared:
            errors.append(
                Warning(
                    f"durable receiver {durable_receiver.path} has no id",
                    hint="Declare it with @durable_receiver(signal, id=...) instead of "
                    "@receiver + @durable; its queued calls keep running (they name its path).",
                    id="durable.W001",
                )
            )
    for kept, duplicate in DUPLICATES:
        errors.append(
            Error(
                f"durable receivers {kept.path} and {duplicate.path} both have the id "
                f"{kept.id!r}; only the first is connected",
                hint="Give each durable receiver an id of its own.",
                id="durable.E002",
            )
        )
    connected = _connected_receivers()
    for wrapper in DECLARED_WRAPPERS:
        if wrapper not in connected:
            errors.append(
                Error(
                    f"durable receiver {wrapper.durable_receiver.path} is connected to no "  # type: ignore[attr-defined]
                    "signal: the signal runs the undecorated function inline",
                    hint="Declare it with @durable_receiver(signal, id=...).",
                    id="durable.E004",
                )
            )
    return errors


@register("signals", "database_state")
def queued_calls_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report calls waiting (and dead letters kept) for a receiver id that no longer exists."""
    try:
        unknown = durable_calls_unknown()
    except DatabaseError:
        # No database yet (before migrate) or none reachable: nothing to say here.
        return []
    return [
        Warning(
            f"{count} durable call(s) queued for {name!r}, which is no durable receiver's id",
            hint=f"Run them under the receiver's new id: manage.py durable_calls {name} "
            f"--rename-to NEW_ID (or declare it with formerly=[{name!r}]); or drop them: "
            f"manage.py durable_calls {name} --discard.",
            id="durable.W003",
        )
        for name, count in unknown.items()
    ]


def _connected_receivers() -> set[Any]:
    connected = set()
    signals = [*DeclaredSignal.by_name.values(), *DJANGO_SIGNALS.values()]
    for signal in signals:
        for _key, receiver_ref, _sender_ref, _is_async in signal.receivers:
            function = dereference(receiver_ref)  # type: ignore[no-untyped-call]
            if function is not None:
                connected.add(function)
    return connected
