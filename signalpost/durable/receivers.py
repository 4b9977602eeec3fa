"""Receivers of the task queue's own upkeep: the heartbeat prunes finished task rows.

(What an erasure asks of the queue is the erasing app's receiver: durable knows
nothing of profiles; see accounts.receivers.)
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from signalpost.durable.maintenance import chore_due
from signalpost.durable.services import task_results_prune
from signalpost.durable.signals import worker_beat

logger = logging.getLogger(__name__)


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
