"""The signals and receivers of ``bench/durable.py``, importable by the worker processes.

Two declared signals with the same arguments, each with one receiver doing the same
trivial work: ``bench_durable_event`` has a durable receiver (sending it records a task
that a ``db_worker`` runs), ``bench_inline_event`` an ordinary one (it runs inside
``send()``). The workers the benchmark starts import this module as
``bench.durable_receivers`` (the repository root is on their path, as ``manage.py``
lives there); the benchmark must import it under the same name.
"""

from django.dispatch import receiver

from signalpost.dispatch import DeclaredSignal
from signalpost.durable.decorators import durable_receiver

ARGUMENTS = ("profile", "user_email", "source")

bench_durable_event = DeclaredSignal(
    "bench_durable_event", arguments=ARGUMENTS, doc="bench/durable.py only."
)
bench_inline_event = DeclaredSignal(
    "bench_inline_event", arguments=ARGUMENTS, doc="bench/durable.py only."
)


def trivial_work(profile, user_email, source):
    """What both receivers do: next to nothing, but it reads its arguments."""
    return profile.pk is not None and bool(user_email) and bool(source)


@durable_receiver(
    bench_durable_event, id="bench.durable_noop", max_attempts=1, backoff_base=0, backoff_max=0
)
def durable_noop(sender, *, profile, user_email, source, **kwargs):
    trivial_work(profile, user_email, source)


@receiver(bench_inline_event, dispatch_uid="bench.inline_noop")
def inline_noop(sender, *, profile, user_email, source, **kwargs):
    trivial_work(profile, user_email, source)
