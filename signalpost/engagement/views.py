"""The tracked link's redirect and the open pixel: answer at once, record off the request path."""

import logging

from django.http import HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from signalpost.engagement.agents import click_agent, open_agent
from signalpost.engagement.models import Kind
from signalpost.engagement.selectors import issue_tracked_link
from signalpost.engagement.services import hit_record
from signalpost.pages import render_page
from signalpost.publishing.tracking import TrackingTokenInvalid, click_read, open_read

logger = logging.getLogger(__name__)

# The smallest transparent GIF (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _link_unusable(request):
    context = {
        "title": _("This link does not work"),
        "message": _(
            "This tracked link is damaged or was not made by this site, so it leads nowhere. "
            "Open the email again and use the link from there, or copy the address it shows."
        ),
    }
    return render_page(request, "signalpost/400.html", context, status=400)


def _user_agent(request) -> str:
    # From META, not request.headers: building the headers mapping walks all of META,
    # which under granian also holds the process's environment (docs/deploy.md).
    return request.META.get("HTTP_USER_AGENT", "")


def _hit_record_safely(**hit) -> None:
    """Record a hit; a failure loses that one count, never the reader's way on."""
    try:
        hit_record(**hit)
    except Exception:  # The database's error: the reader still gets where they wanted.
        logger.exception("Could not record a %s of issue %s", hit["kind"], hit["issue_id"])


@require_safe
@never_cache
def click(request, token):
    """Send the reader to the issue's link the token names (302), counting the click."""
    try:
        issue_id, delivery_id, index = click_read(token)
    except (TrackingTokenInvalid, ValueError):
        return _link_unusable(request)
    url = issue_tracked_link(issue_id=issue_id, index=index)
    if url is None:
        return _link_unusable(request)
    _hit_record_safely(
        issue_id=issue_id,
        delivery_id=delivery_id,
        kind=Kind.CLICK,
        link_index=index,
        agent=click_agent(method=request.method, user_agent=_user_agent(request)),
    )
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_safe
@never_cache
def open_pixel(request, token):
    """The 1x1 image of an issue's email: counts an open, whoever fetched it."""
    try:
        issue_id, delivery_id = open_read(token)
    except (TrackingTokenInvalid, ValueError):
        return _link_unusable(request)
    _hit_record_safely(
        issue_id=issue_id,
        delivery_id=delivery_id,
        kind=Kind.OPEN,
        link_index=None,
        agent=open_agent(method=request.method, user_agent=_user_agent(request)),
    )
    return HttpResponse(PIXEL, content_type="image/gif")
