import logging
import os
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from signalpost.conf import conf
from signalpost.durable.heartbeat import WorkerHeartbeat
from signalpost.durable.worker import BatchWorker

BATCH_SIZE_MAX = 1000


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(value)
    return seconds


def _batch_size(value: str) -> int:
    size = int(value)
    if not 1 <= size <= BATCH_SIZE_MAX:
        raise ArgumentTypeError(f"must be between 1 and {BATCH_SIZE_MAX}")
    return size


class Command(db_worker.Command):
    help = (
        "Run a task worker over django-tasks-db's queue: it claims due tasks in batches "
        "(at most --batch-size, sized to about half a second of CPU), runs them and records "
        "their outcomes per batch, with a heartbeat: the tasks of a worker that dies are run "
        "again by another after --lease seconds. SIGTERM or Ctrl+C finishes the current "
        "task, then exits."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--lease",
            type=_positive_seconds,
            default=conf.WORKER_LEASE_SECONDS,
            help="Seconds without a heartbeat after which this worker's running tasks are "
            "taken for lost and run again (default: %(default)s, WORKER_LEASE_SECONDS).",
        )
        parser.add_argument(
            "--batch-size",
            type=_batch_size,
            default=conf.WORKER_BATCH_SIZE,
            help="The most tasks claimed at once (default: %(default)s, WORKER_BATCH_SIZE); "
            "1 claims one task at a time.",
        )

    def configure_logging(self, verbosity: int) -> None:
        super().configure_logging(verbosity)
        if verbosity == 1:
            # signalpost.tasks logs one line per task, with its duration; Django's
            # own two lines per task (started, finished) would only repeat it.
            logging.getLogger("django.tasks").setLevel(logging.WARNING)

    # --lease and --batch-size are this command's own options.
    def handle(  # type: ignore[override]
        self,
        *,
        lease: float,
        batch_size: int,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        reload = reload and not batch
        worker = BatchWorker(
            worker_id=worker_id,
            queue_names=queue_names,
            excluded_queue_names=excluded,
            backend_name=backend_name,
            interval=interval,
            max_batch_size=batch_size,
            exit_when_idle=batch,
            max_tasks=max_tasks,
        )
        run = worker.run
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
                # The autoreloader's parent process only restarts the child on changes.
                run_with_reloader(worker.run)
                return

            def run() -> None:
                run_with_reloader(worker.run)

        heartbeat = WorkerHeartbeat(worker_id=worker_id, queues=queue_names, lease_seconds=lease)
        try:
            heartbeat.start()
        except Exception as error:
            raise CommandError(f"cannot register the worker: {error}") from error
        try:
            worker.configure_signals()
            run()
        finally:
            heartbeat.stop()
