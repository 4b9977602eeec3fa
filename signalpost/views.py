"""Pages of the site as a whole: its health, its language, and the page shown when a
view fails."""

import logging

from django.conf import settings
from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from signalpost.health import health_status
from signalpost.pages import render_page

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


# A code shown back in an error is cut to this many characters.
LANGUAGE_SHOWN_MAX = 20


# Choosing a language changes only how pages read, and the switcher is on pages that
# set no cookie (the one-click unsubscribe page): no CSRF token to carry.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def language_set(request):
    """The language switcher's target: Django's ``set_language`` (a cookie, then back to
    ``next``), for the languages of ``settings.LANGUAGES`` only. A POST without one, or
    with another, gets a 400 naming the ``language`` field and changes nothing."""
    if request.method == "POST":
        code = request.POST.get("language", "")
        known = dict(settings.LANGUAGES)
        choices = ", ".join(known)
        if not code.strip():
            message = _("language is missing: choose one of %(choices)s.") % {"choices": choices}
        elif code not in known:
            shown = code[:LANGUAGE_SHOWN_MAX] + ("…" if len(code) > LANGUAGE_SHOWN_MAX else "")
            message = _(
                "language: %(code)s is not a language of this site; choose one of %(choices)s."
            ) % {"code": repr(shown), "choices": choices}
        else:
            message = ""
        if message:
            context = {"title": _("Bad request"), "message": message}
            return render_page(request, "signalpost/400.html", context, status=400)
    return i18n.set_language(request)


def server_error(request):
    """The 500 page in the site's own look; a bare one if even that cannot render."""
    try:
        return render(request, "500.html", status=500)
    except Exception:
        logger.exception("The 500 page could not be rendered")
        return HttpResponseServerError(BARE_SERVER_ERROR)
