"""The service's health in one cheap look: database, cache, the freshest worker.

``health_status()`` makes one database query and one cache call, so a load
balancer or uptime monitor may ask every second.
"""

from datetime import timedelta

from django.core.cache import cache
from django.db import DatabaseError
from django.db.models import Max
from django.utils import timezone

from signalpost.conf import conf
from signalpost.durable.models import WorkerProcess

CACHE_PROBE_KEY = "signalpost:healthz"


def health_status():
    """Return ``(healthy, report)``.

    Healthy means the database answers and some worker beat within two leases
    (a worker beats every quarter lease). A cache outage is reported but does
    not make the service unhealthy: requests go through without it.
    """
    now = timezone.now()
    report = {"status": "ok", "database": "ok", "cache": "ok", "worker": None}
    try:
        heartbeat_at = WorkerProcess.objects.aggregate(latest=Max("heartbeat_at"))["latest"]
    except DatabaseError:
        report["database"] = "unreachable"
        heartbeat_at = None
    try:
        cache.get(CACHE_PROBE_KEY)
    except Exception:  # Any backend's connection error.
        report["cache"] = "unreachable"
    allowed = timedelta(seconds=2 * conf.WORKER_LEASE_SECONDS)
    worker_alive = heartbeat_at is not None and now - heartbeat_at <= allowed
    if heartbeat_at is not None:
        report["worker"] = {
            "heartbeat_at": heartbeat_at.isoformat(),
            "age_seconds": round((now - heartbeat_at).total_seconds(), 1),
            "alive": worker_alive,
        }
    healthy = report["database"] == "ok" and worker_alive
    report["status"] = "ok" if healthy else "unavailable"
    return healthy, report
