"""The signal of the worker machinery (the public catalogue is ``signalpost.signals``)."""

from signalpost.dispatch import DeclaredSignal

worker_beat = DeclaredSignal(
    "worker_beat",
    arguments=("worker_id",),
    doc="A worker's heartbeat, every quarter lease, after it requeued the tasks of lost "
    "workers. Sent by durable.heartbeat in the heartbeat thread, outside any transaction, "
    "by every worker: receivers recover work a failure left stranded, and must be quick, "
    "idempotent and safe to run in several workers at once. A receiver's exception is "
    "logged and the next beat runs it again.",
)
