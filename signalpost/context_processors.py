"""Template context every page of the site shares."""

from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse

# The site's links depend only on the URL configuration and the prefix the site is
# served under, so each process works them out once per pair instead of reversing
# seven URLs on every page (a fifth of rendering a page). A site has one or two
# prefixes; the cap keeps a server that takes SCRIPT_NAME from a header from being
# made to remember one per request.
_links_by_prefix: dict[tuple[str, str | None], dict[str, str]] = {}
LINKS_KEPT_MAX = 16


def site_links(request):
    """Add ``site_links``: the navigation's URLs and the stylesheet's."""
    key = (get_script_prefix(), get_urlconf())
    links = _links_by_prefix.get(key)
    if links is None:
        links = {
            "home": reverse("home"),
            "subscribe": reverse("subscribe"),
            "unsubscribe": reverse("unsubscribe"),
            "preferences_request": reverse("preferences_request"),
            "stylesheet": static("signalpost/site.css"),
        }
        if len(_links_by_prefix) < LINKS_KEPT_MAX:
            _links_by_prefix[key] = links
    return {"site_links": links}
