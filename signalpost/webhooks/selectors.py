"""Reads of webhook endpoints.

Whether any active endpoint exists is asked on every signal that has a webhook
event (each subscribe, confirm, unsubscribe...), and the answer changes only
when staff add, change or remove an endpoint. So it is kept in the cache, under
a generation that every such change replaces (``endpoints_changed``, called by
the receivers of the endpoint's ``post_save`` and ``post_delete``). A queryset
``update()`` sends neither: it is seen within ``ANSWER_TIMEOUT_SECONDS``.
"""

import hashlib
import logging
import uuid

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections, router

from signalpost.webhooks.models import WebhookEndpoint

logger = logging.getLogger(__name__)

# A backstop only: a change is seen at once through the generation. This bounds
# how long a change whose invalidation could not reach the cache goes unseen.
ANSWER_TIMEOUT_SECONDS = 60


def _cache_shared() -> BaseCache | None:
    """Return the default cache if every process sees the same one, else ``None``.

    A process-local cache (locmem, the default) cannot hear of an endpoint that
    another process created, and a missed endpoint is a lost event.
    """
    cache = caches["default"]
    if isinstance(cache, (LocMemCache, DummyCache)):
        return None
    return cache


def _cache_keys() -> tuple[str, str]:
    """Return the generation's and the answer's keys for the endpoints' database.

    The answer is a fact about one database: two sites (or a test run and a
    benchmark) sharing one Redis must not read each other's.
    """
    database = connections[router.db_for_read(WebhookEndpoint)].settings_dict
    where = f"{database['ENGINE']}|{database['HOST']}|{database['PORT']}|{database['NAME']}"
    scope = hashlib.sha256(where.encode()).hexdigest()[:16]
    return (
        f"signalpost:webhooks:{scope}:endpoints-generation",
        f"signalpost:webhooks:{scope}:active-endpoints-exist",
    )


def _endpoints_active_exist_uncached() -> bool:
    return WebhookEndpoint.objects.filter(is_active=True).exists()


def endpoints_active_exist() -> bool:
    """Return whether any active endpoint exists, from the cache when it is shared.

    The cached answer is stored with the generation read *before* the database
    was, and used only while that generation is current. A change replaces the
    generation after it commits, so an answer read before the commit, even one
    stored after it, is never used again.
    """
    cache = _cache_shared()
    if cache is None:
        return _endpoints_active_exist_uncached()
    generation_key, answer_key = _cache_keys()
    try:
        found = cache.get_many([generation_key, answer_key])
        generation = found.get(generation_key)
        if generation is None:
            # First use, or the key was evicted: start a generation. If another
            # process started one meanwhile, this answer is not stored.
            generation = uuid.uuid4().hex
            if not cache.add(generation_key, generation, timeout=None):
                generation = None
        else:
            answer: tuple[str, bool] | None = found.get(answer_key)
            if answer is not None and answer[0] == generation:
                return answer[1]
    except Exception:
        logger.warning("Cache unavailable; asking the database about endpoints", exc_info=True)
        return _endpoints_active_exist_uncached()
    exists = _endpoints_active_exist_uncached()
    if generation is not None:
        try:
            cache.set(answer_key, (generation, exists), timeout=ANSWER_TIMEOUT_SECONDS)
        except Exception:
            logger.warning("Cache unavailable; webhook endpoints answer not kept", exc_info=True)
    return exists


def endpoints_changed() -> None:
    """Make every process ask the database again whether active endpoints exist."""
    cache = _cache_shared()
    if cache is None:
        return
    generation_key, _ = _cache_keys()
    try:
        cache.set(generation_key, uuid.uuid4().hex, timeout=None)
    except Exception:
        logger.error(
            "Cache unavailable: other processes may not see a webhook endpoint change "
            "for up to %s s",
            ANSWER_TIMEOUT_SECONDS,
            exc_info=True,
        )
