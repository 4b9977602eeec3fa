"""Receivers that keep the task queue and dead letters in step with erasures.

They change only this database and run inside the sender's transaction; the
heartbeat's receiver prunes finished task rows.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from signalpost.durable.maintenance import chore_due
from signalpost.durable.services import durable_calls_forget, task_results_prune
from signalpost.durable.signals import worker_beat
from signalpost.signals import profile_erased

logger = logging.getLogger(__name__)


@receiver(profile_erased, dispatch_uid="durable.calls_forget_profile")
def durable_calls_forget_profile(sender, *, profile_id, user_email, **kwargs):
    """Task arguments and dead letters keep the signal's user_email: erase it there too."""
    durable_calls_forget(profile_id=profile_id, email=user_email)


@receiver(worker_beat, dispatch_uid="durable.task_results_prune_old")
def task_results_prune_old(sender, *, worker_id, **kwargs):
    """Finished task rows older than ``TASK_RESULTS_RETENTION_DAYS`` go, once per interval."""
    days = settings.SIGNALPOST_TASK_RESULTS_RETENTION_DAYS
    if days <= 0 or not chore_due(
        "task_results_prune", every=settings.SIGNALPOST_MAINTENANCE_INTERVAL_SECONDS
    ):
        return
    pruned = task_results_prune(older_than=timezone.now() - timedelta(days=days))
    logger.info("Pruned %d finished task rows older than %d days", pruned, days)
