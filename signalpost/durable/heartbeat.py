"""A worker's heartbeat: proof of life, and the recovery of dead workers' tasks."""

import logging
import threading

from django.db import DatabaseError, connection, connections

from signalpost.durable.selectors import workers_alive_besides
from signalpost.durable.services import (
    orphaned_tasks_requeue,
    worker_deregister,
    worker_heartbeat,
    worker_register,
)
from signalpost.durable.signals import worker_beat

logger = logging.getLogger(__name__)


class WorkerHeartbeat(threading.Thread):
    """Beats every quarter lease beside the worker's task loop, on its own connection.

    Each beat also requeues the tasks of workers that stopped beating, so any
    live worker recovers the work of a dead one; then it sends ``worker_beat``,
    for receivers that recover what other failures strand (a send whose batch
    could not give its deliveries back). Running in a thread keeps the
    heartbeat going while a long task holds the main loop.
    """

    def __init__(self, *, worker_id: str, queues: list[str], lease_seconds: float) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.worker_id = worker_id
        self.queues = queues
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 4
        self.stopping = threading.Event()

    def start(self) -> None:
        worker = worker_register(worker_id=self.worker_id, queues=self.queues)
        if connection.vendor == "sqlite" and workers_alive_besides(worker):
            # Measured (bench/durable.py): SQLite's single write lock makes two
            # workers slower than one.
            logger.warning(
                "Another worker is running on this SQLite database; on SQLite one worker "
                "is faster than two. Use PostgreSQL to run several."
            )
        super().start()

    def run(self) -> None:
        try:
            while True:
                self.beat()
                if self.stopping.wait(self.interval):
                    return
        finally:
            connections.close_all()

    def beat(self) -> None:
        try:
            worker_heartbeat(worker_id=self.worker_id, queues=self.queues)
            orphaned_tasks_requeue(lease_seconds=self.lease_seconds)
        except DatabaseError:
            # A locked or restarting database: the next beat tries again.
            logger.warning("Heartbeat of worker %s failed", self.worker_id, exc_info=True)
            connections.close_all()
            return
        # Robust: a failing receiver must not stop the heartbeat thread.
        for receiver, error in worker_beat.send_robust(sender=None, worker_id=self.worker_id):
            if isinstance(error, Exception):
                logger.warning("Heartbeat receiver %r failed", receiver, exc_info=error)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.interval + 30)
        worker_deregister(worker_id=self.worker_id)
