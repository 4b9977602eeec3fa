"""The subscribe form other websites embed: where a request comes from, what it gets back,
and the snippets staff copy (docs/subscribers.md#embedding).

A newsletter allows embedding and may list the origins of the sites that carry its form.
A request's origin stands in one of four ways (:func:`origin_standing`):

- ``own``: this site's own pages (the iframe's form, the page that corrects a mistyped
  address) post to the endpoint like any form of the site;
- ``listed``: a site the newsletter lists: it gets CORS answers for the script, a link
  back from the landing page, and may frame the iframe form;
- ``open``: any site, when the list is empty: the plain form works, nothing more;
- ``refused``: a site not on a non-empty list, or a request that names no origin.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.csp import CSP

from signalpost.conf import conf
from signalpost.newsletters.models import Newsletter
from signalpost.newsletters.origins import origin_normalize

OWN = "own"
LISTED = "listed"
OPEN = "open"
REFUSED = "refused"

REFERER_MAX_LENGTH = 2000
SCRIPT_PATH = "signalpost/embed.js"


def request_origin(request) -> str | None:
    """Return the origin of the page that sent ``request``, or ``None`` when it names none.

    Its ``Origin`` header (every browser sends one with a cross-origin POST), else the
    origin of its ``Referer``. ``Origin: null`` (a sandboxed or no-referrer page) is none.
    """
    origin = request.headers.get("Origin", "")
    if origin:
        return origin_normalize(origin)
    referer = request.headers.get("Referer", "")[:REFERER_MAX_LENGTH]
    return origin_normalize(_origin_of_url(referer)) if referer else None


def _origin_of_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _own_origins(request) -> set[str]:
    """This site's origins: the one ``SITE_URL`` names and the one this request reached."""
    site = origin_normalize(_origin_of_url(conf.SITE_URL))
    reached = origin_normalize(f"{request.scheme}://{request.get_host()}")
    return {origin for origin in (site, reached) if origin}


def origin_standing(request, *, newsletter: Newsletter, origin: str | None) -> str:
    """Return how ``origin`` stands for ``newsletter``'s embedded form: own, listed, open
    or refused (see the module's docstring)."""
    if origin is not None and origin in _own_origins(request):
        return OWN
    listed = newsletter.embed_origin_list
    if origin is not None and origin in listed:
        return LISTED
    return OPEN if not listed else REFUSED


def page_back(request, *, origin: str) -> str:
    """The page a submission from the listed ``origin`` came from, to link back to.

    The ``Referer`` when it is a page of that origin (browsers send the whole address
    only when the page's referrer policy lets them), else the origin's home page.
    """
    referer = request.headers.get("Referer", "")
    readable = len(referer) <= REFERER_MAX_LENGTH and referer.isprintable()
    if readable and origin_normalize(_origin_of_url(referer)) == origin:
        return referer
    return f"{origin}/"


def frame_policy(newsletter: Newsletter) -> dict[str, object]:
    """The Content-Security-Policy of the endpoint's pages: the site's (``SECURE_CSP``), with
    only the newsletter's listed origins allowed to frame them (none when it lists none)."""
    ancestors = newsletter.embed_origin_list if newsletter.embed_allowed else []
    return {**(settings.SECURE_CSP or {}), "frame-ancestors": ancestors or [CSP.NONE]}


def cors_headers(*, origin: str | None, standing: str) -> dict[str, str]:
    """CORS headers for an answer to ``origin``: the exact origin, for listed ones only."""
    if standing != LISTED or origin is None:
        return {}
    return {"Access-Control-Allow-Origin": origin}


def _absolute(url: str) -> str:
    return url if urlsplit(url).scheme else f"{conf.SITE_URL}{url}"


def embed_urls(newsletter: Newsletter) -> dict[str, str]:
    """The absolute URLs a snippet names: the endpoint (also the iframe's page) and the script.

    The script's address is its plain static name, not a content-hashed one: a page
    that copied the snippet keeps working after an upgrade.
    """
    static_url = settings.STATIC_URL
    if not static_url.startswith(("http://", "https://", "/")):
        static_url = f"/{static_url}"
    return {
        "action": _absolute(reverse("signalpost:embed_subscribe", args=[newsletter.slug])),
        "script": _absolute(f"{static_url.rstrip('/')}/{SCRIPT_PATH}"),
    }


def embed_snippets(newsletter: Newsletter) -> dict[str, str]:
    """The three snippets to copy onto another site, as HTML text: ``form`` (a plain form
    that works without JavaScript), ``script`` (the same form and the script that
    submits it in place) and ``iframe``. Everything in them is escaped for HTML."""
    context = {"newsletter": newsletter, "urls": embed_urls(newsletter)}
    return {
        "form": render_to_string("newsletters/snippets/form.html", context).strip(),
        "script": render_to_string(
            "newsletters/snippets/form.html", {**context, "script": True}
        ).strip(),
        "iframe": render_to_string("newsletters/snippets/iframe.html", context).strip(),
    }
