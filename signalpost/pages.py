"""What every public page of Signalpost is rendered with, in the standalone site or a host's.

Each page extends ``conf.BASE_TEMPLATE`` (``signalpost_base_template``; the standalone
``signalpost/base.html`` by default) and links through ``site_links``. The views pass both
themselves, so a host project need not add a context processor (docs/integrate.md).
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse

from signalpost.conf import conf

# The site's links depend only on the URL configuration and the prefix the site is
# served under, so each process works them out once per pair instead of reversing
# them on every page (a fifth of rendering a page). A site has one or two prefixes;
# the cap keeps a server that takes SCRIPT_NAME from a header from being made to
# remember one per request.
_links_by_prefix: dict[tuple[str, str | None], dict[str, str]] = {}
LINKS_KEPT_MAX = 16


def site_links() -> dict[str, str]:
    """Return the navigation's URLs and the stylesheet's, wherever Signalpost's URLs sit."""
    key = (get_script_prefix(), get_urlconf())
    links = _links_by_prefix.get(key)
    if links is None:
        links = {
            "home": reverse("signalpost:home"),
            "subscribe": reverse("signalpost:subscribe"),
            "unsubscribe": reverse("signalpost:unsubscribe"),
            "preferences_request": reverse("signalpost:preferences_request"),
            "stylesheet": static("signalpost/site.css"),
        }
        if len(_links_by_prefix) < LINKS_KEPT_MAX:
            _links_by_prefix[key] = links
    return links


def page_context() -> dict[str, Any]:
    """The variables every public page's template reads besides its own."""
    return {"site_links": site_links(), "signalpost_base_template": conf.BASE_TEMPLATE}


def render_page(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any] | None = None,
    status: int | None = None,
) -> HttpResponse:
    """``render()`` for a public page: its context plus ``page_context()``."""
    return render(request, template_name, {**page_context(), **(context or {})}, status=status)
