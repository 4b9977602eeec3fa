"""The project's own receivers (the apps keep theirs in their receivers.py).

A task's log line: Django's ``task_finished`` signal, one line per task run
(``signalpost.logs`` formats it, plain or JSON).
"""

import logging

from django.dispatch import receiver
from django.tasks.signals import task_finished

from signalpost.logs import task_logger


@receiver(task_finished, dispatch_uid="signalpost.task_log_finished")
def task_log_finished(sender, *, task_result, **kwargs):
    """Log one line per task run: task, id, outcome and duration."""
    started, finished = task_result.started_at, task_result.finished_at
    duration_ms = (
        round((finished - started).total_seconds() * 1000, 1) if started and finished else None
    )
    outcome = str(task_result.status)
    task_logger.log(
        logging.WARNING if outcome == "FAILED" else logging.INFO,
        "task %s %s %s %sms",
        task_result.task.module_path,
        task_result.id,
        outcome,
        duration_ms,
        extra={
            "task": task_result.task.module_path,
            "task_id": str(task_result.id),
            "outcome": outcome,
            "duration_ms": duration_ms,
        },
    )
