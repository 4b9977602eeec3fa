"""Pages of the site as a whole: its health, and the page shown when a view fails."""

import logging

from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from signalpost.health import health_status

logger = logging.getLogger(__name__)

BARE_SERVER_ERROR = (
    "<!doctype html><html lang=en><title>Something went wrong</title>"
    "<h1>Something went wrong on our side</h1><p><a href=/>Back to the newsletters</a></p>"
)


@require_safe
@never_cache
def healthz(request):
    """200 with a JSON report when the service can work, 503 (same report) when not."""
    healthy, report = health_status()
    response = JsonResponse(report, status=200 if healthy else 503)
    # A monitor polling every second during an outage would write an error line
    # each time through django.request; the request log has one line anyway.
    response._has_been_logged = True
    return response


def server_error(request):
    """The 500 page in the site's own look; a bare one if even that cannot render."""
    try:
        return render(request, "500.html", status=500)
    except Exception:
        logger.exception("The 500 page could not be rendered")
        return HttpResponseServerError(BARE_SERVER_ERROR)
