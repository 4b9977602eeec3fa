"""Fixed-window rate limits in Django's cache (Redis when more than one process serves)."""

import hashlib
import logging
import re
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


def rate_parse(rate):
    """Return ``(count, seconds)`` for a rate such as ``"30/h"`` or ``"5/10m"``, or ``None``."""
    if rate.strip() in {"", "0"}:
        return None
    match = RATE_PATTERN.match(rate)
    if not match:
        raise ImproperlyConfigured(f"rate limit {rate!r} is not COUNT/PERIOD (e.g. 30/h, 5/10m)")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * PERIODS[unit]


def rate_limit_allows(*, scope, key):
    """Count one hit for ``key`` under the limit named ``scope``; return whether it is allowed.

    Keys are hashed, so addresses and IPs are not stored in the cache in clear.
    A cache that is down lets requests through: an outage of the cache must not
    become an outage of subscribing.
    """
    limit = rate_parse(settings.SIGNALPOST_RATE_LIMITS[scope])
    if limit is None:
        return True
    count, seconds = limit
    window = int(time.time() // seconds)
    digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()[:32]
    cache_key = f"signalpost:ratelimit:{scope}:{digest}:{window}"
    try:
        if cache.add(cache_key, 1, timeout=seconds + 1):
            return True
        return cache.incr(cache_key) <= count
    except ValueError:
        # The key expired between add and incr: this is the window's first hit.
        return True
    except Exception:
        logger.warning("Rate limit cache unavailable; allowing %s", scope, exc_info=True)
        return True
