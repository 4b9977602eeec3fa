import logging
import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from signalpost.durable.heartbeat import WorkerHeartbeat


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(value)
    return seconds


class Command(db_worker.Command):
    help = (
        "Run a task worker (django-tasks-db's db_worker) with a heartbeat: the tasks of a worker "
        "that dies are run again by another after --lease seconds. SIGTERM or Ctrl+C finishes "
        "the current task, then exits."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--lease",
            type=_positive_seconds,
            default=settings.SIGNALPOST_WORKER_LEASE_SECONDS,
            help="Seconds without a heartbeat after which this worker's running task is "
            "taken for lost and run again (default: %(default)s, WORKER_LEASE_SECONDS).",
        )

    def configure_logging(self, verbosity: int) -> None:
        super().configure_logging(verbosity)
        if verbosity == 1:
            # signalpost.tasks logs one line per task, with its duration; Django's
            # own two lines per task (started, finished) would only repeat it.
            logging.getLogger("django.tasks").setLevel(logging.WARNING)

    # --lease is this command's own option, which the parent's signature lacks.
    def handle(self, *, lease: float, **options: Any) -> None:  # type: ignore[override]
        # Under the autoreloader, the parent process only watches files.
        if options["reload"] and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
            return super().handle(**options)
        queue_names = options["queue_name"].split(",")
        heartbeat = WorkerHeartbeat(
            worker_id=options["worker_id"], queues=queue_names, lease_seconds=lease
        )
        try:
            heartbeat.start()
        except Exception as error:
            raise CommandError(f"cannot register the worker: {error}") from error
        try:
            return super().handle(**options)
        finally:
            heartbeat.stop()
