"""Fixed-window rate limits in Django's cache (Redis when more than one process serves)."""

import hashlib
import ipaddress
import logging
import time

from django.core.cache import cache

from signalpost.conf import conf
from signalpost.config import rate_parse

logger = logging.getLogger(__name__)


def client_bucket(ip):
    """Return the rate-limit key for a client at ``ip`` (a string or ``None``), or ``None``.

    An IPv6 client is counted by its /64: one host is usually given a whole /64,
    and counting its addresses one by one would give it 2**64 allowances.
    """
    if ip is None:
        return None
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def rate_limit_allows(*, scope, key):
    """Count one hit for ``key`` under the limit named ``scope``; return whether it is allowed.

    Keys are hashed, so addresses and IPs are not stored in the cache in clear.
    A cache that is down lets requests through: an outage of the cache must not
    become an outage of subscribing.
    """
    limit = rate_parse(conf.RATE_LIMITS[scope])
    if limit is None:
        return True
    if key is None:
        # Nobody to count (a client with no IP address, as over a Unix socket without a
        # proxy's header): one shared count would turn the limit on everyone at once.
        logger.warning("Rate limit %s has no key for this request; allowing it", scope)
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


def client_ip(request):
    """Return the client's IP address, or ``None`` when it is not one.

    Behind ``SIGNALPOST_TRUSTED_PROXY_COUNT`` proxies, the address the
    outermost trusted proxy saw; otherwise the connection's own address.
    """
    candidates = [request.META.get("REMOTE_ADDR", "")]
    proxies = conf.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(hops) >= proxies:
            # A trusted proxy always names the client: a request without the header
            # came straight to us, and its connection's address is the client's.
            candidates.insert(0, hops[-proxies])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def client_rate_allows(request, *, scope):
    """Count one hit of the client's IP under the limit ``scope``; return whether it is allowed."""
    return rate_limit_allows(scope=scope, key=client_bucket(client_ip(request)))
