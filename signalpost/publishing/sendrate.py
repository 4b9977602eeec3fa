"""A send rate shared by every worker, counted in Django's cache per second."""

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)


class SendRate:
    """Allows at most ``per_second`` messages a second across every process sharing the cache.

    With the default local-memory cache each process counts alone: use Redis
    (``CACHE_URL``) when several workers send. ``per_second`` 0 means no limit.
    """

    def __init__(self, per_second, *, key="signalpost:sendrate"):
        self.per_second = per_second
        self.key = key

    def acquire(self):
        """Block until one more message may be sent now."""
        if not self.per_second:
            return
        while True:
            second = int(time.time())
            key = f"{self.key}:{second}"
            try:
                if cache.add(key, 1, timeout=5):
                    return
                if cache.incr(key) <= self.per_second:
                    return
            except ValueError:
                continue  # the window's key expired between add and incr
            except Exception:
                logger.warning("Send rate cache unavailable; not limiting", exc_info=True)
                return
            time.sleep(max(0.0, second + 1 - time.time()))
