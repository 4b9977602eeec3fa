"""Chores the workers do on their heartbeat, so an operator needs no cron.

A ``worker_beat`` receiver asks ``chore_due(name, every=...)`` whether to do
its chore now. Each worker process does it at most once per interval, and
with a shared cache (Redis) only one worker of them all per interval does.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from signalpost.conf import conf

logger = logging.getLogger(__name__)

_last_done: dict[str, float] = {}
_last_done_lock = threading.Lock()


def chore_due(name: str, *, every: float) -> bool:
    """Return whether the chore ``name`` should run now, and if so claim it for ``every`` s.

    ``every`` of 0 or less turns the chore off. A cache outage leaves the
    choice to each process: a chore must be harmless when two run it.
    """
    if every <= 0:
        return False
    now = time.monotonic()
    with _last_done_lock:
        last = _last_done.get(name)
        if last is not None and now - last < every:
            return False
        _last_done[name] = now
    try:
        return cache.add(f"signalpost:chore:{name}", 1, timeout=every)
    except Exception:  # Any backend's connection error.
        logger.warning("Cache unavailable; chore %s runs in this worker", name, exc_info=True)
        return True


def chores_forget() -> None:
    """Forget when each chore ran in this process (tests)."""
    with _last_done_lock:
        _last_done.clear()


def retention_cutoff(chore: str, *, days: float) -> datetime | None:
    """Return the time before which finished rows of ``chore`` go, if it is due now; else None.

    ``days`` of 0 or less keeps everything; the chore runs once per
    ``MAINTENANCE_INTERVAL_SECONDS`` (see ``chore_due``).
    """
    if days <= 0 or not chore_due(chore, every=conf.MAINTENANCE_INTERVAL_SECONDS):
        return None
    return timezone.now() - timedelta(days=days)
