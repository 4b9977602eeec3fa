"""What is connected to which signal: the control flow that signals hide."""

import weakref
from dataclasses import dataclass

from django.contrib.auth import signals as auth_signals
from django.core.signals import got_request_exception, request_finished, request_started
from django.db.models import Model
from django.db.models import signals as model_signals
from django.dispatch import Signal
from django.tasks import signals as task_signals

from signalpost.dispatch import DeclaredSignal
from signalpost.signals import CATALOGUE

# Django's own signals worth showing beside the catalogue, by the name people
# import them as. Migration and settings signals are left out: they are tooling.
DJANGO_SIGNALS = {
    "pre_init": model_signals.pre_init,
    "post_init": model_signals.post_init,
    "pre_save": model_signals.pre_save,
    "post_save": model_signals.post_save,
    "pre_delete": model_signals.pre_delete,
    "post_delete": model_signals.post_delete,
    "m2m_changed": model_signals.m2m_changed,
    "user_logged_in": auth_signals.user_logged_in,
    "user_logged_out": auth_signals.user_logged_out,
    "user_login_failed": auth_signals.user_login_failed,
    "request_started": request_started,
    "request_finished": request_finished,
    "got_request_exception": got_request_exception,
    "task_enqueued": task_signals.task_enqueued,
    "task_started": task_signals.task_started,
    "task_finished": task_signals.task_finished,
}


DJANGO_SIGNAL_NAMES = {id(signal): name for name, signal in DJANGO_SIGNALS.items()}


def signal_name(signal: Signal) -> str:
    """Return the name a durable task records for ``signal``; raise ``TypeError`` if none."""
    if isinstance(signal, DeclaredSignal):
        return signal.name
    try:
        return DJANGO_SIGNAL_NAMES[id(signal)]
    except KeyError:
        raise TypeError(
            f"{signal!r} has no name: durable receivers need a DeclaredSignal or one of "
            f"Django's signals ({', '.join(DJANGO_SIGNALS)})"
        ) from None


def signal_by_name(name: str) -> Signal:
    """Return the signal ``signal_name`` named ``name``; raise ``LookupError`` if unknown."""
    signal = DeclaredSignal.by_name.get(name) or DJANGO_SIGNALS.get(name)
    if signal is None:
        raise LookupError(f"no signal named {name!r}")
    return signal


@dataclass(frozen=True)
class ReceiverInfo:
    path: str
    sender: str
    mode: str
    dispatch_uid: str | None
    retry_policy: str | None = None


def dereference(reference):
    """Return the object behind a dispatcher reference (weak or strong), or ``None``."""
    if isinstance(reference, weakref.ReferenceType):
        return reference()
    return reference


def describe_sender(sender):
    if sender is None:
        return "any"
    if isinstance(sender, type) and issubclass(sender, Model):
        return sender._meta.label
    if isinstance(sender, type):
        return f"{sender.__module__}.{sender.__qualname__}"
    return repr(sender)


def describe_receiver(function):
    module = getattr(function, "__module__", "?")
    name = getattr(function, "__qualname__", repr(function))
    return f"{module}.{name}"


def receivers_of(signal):
    """Return a ``ReceiverInfo`` for each live receiver connected to ``signal``."""
    infos = []
    for lookup_key, receiver_ref, sender_ref, _is_async in signal.receivers:
        function = dereference(receiver_ref)
        if function is None:
            continue
        uid = lookup_key[0]
        # Without a dispatch_uid the key holds id(receiver), not a name.
        dispatch_uid = uid if isinstance(uid, str) else None
        policy = getattr(function, "durable_policy", None)
        infos.append(
            ReceiverInfo(
                path=describe_receiver(function),
                sender=describe_sender(dereference(sender_ref)),
                mode="durable" if policy else "sync",
                dispatch_uid=dispatch_uid,
                retry_policy=policy.describe() if policy else None,
            )
        )
    return infos


def catalogue_report():
    """Return ``[(signal, [ReceiverInfo, ...]), ...]`` for every declared signal.

    The catalogue comes first, then signals other apps declared with ``DeclaredSignal``.
    """
    others = [signal for signal in DeclaredSignal.by_name.values() if signal not in CATALOGUE]
    return [(signal, receivers_of(signal)) for signal in (*CATALOGUE, *others)]


def django_report():
    """Return ``[(name, signal, [ReceiverInfo, ...]), ...]`` for Django signals with receivers."""
    report = []
    for name, signal in DJANGO_SIGNALS.items():
        infos = receivers_of(signal)
        if infos:
            report.append((name, signal, infos))
    return report
