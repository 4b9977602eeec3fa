"""Receivers of the task queue's own upkeep: the heartbeat prunes finished task rows.

(What an erasure asks of the queue is the erasing app's receiver: durable knows
nothing of profiles; see accounts.receivers.)
"""

import logging

from django.dispatch import receiver

from signalpost.conf import conf
from signalpost.durable import checks  # noqa: F401  (registers the system checks)
from signalpost.durable.maintenance import retention_cutoff
from signalpost.durable.services import task_results_prune
from signalpost.durable.signals import worker_beat

logger = logging.getLogger(__name__)


@receiver(worker_beat, dispatch_uid="durable.task_results_prune_old")
def task_results_prune_old(sender: object, *, worker_id: str, **kwargs: object) -> None:
    """Finished task rows older than ``TASK_RESULTS_RETENTION_DAYS`` go, once per interval."""
    days = conf.TASK_RESULTS_RETENTION_DAYS
    cutoff = retention_cutoff("task_results_prune", days=days)
    if cutoff is None:
        return
    pruned = task_results_prune(older_than=cutoff)
    logger.info("Pruned %d finished task rows older than %d days", pruned, days)
