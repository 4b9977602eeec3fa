import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from signalpost.newsletters.forms import SubscribeForm
from signalpost.newsletters.languages import page_render
from signalpost.newsletters.models import Newsletter
from signalpost.pages import render_page
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issues_sent
from signalpost.publishing.services import IMAGE_DIRECTORY, image_name_valid


def public_newsletter_or_404(request, slug):
    newsletter = get_object_or_404(Newsletter.objects.prefetch_related("topics"), slug=slug)
    return newsletter if newsletter.is_public else None


@require_safe
def newsletter_page(request, slug):
    """A newsletter's page: what it is, a subscribe form, its archive."""
    newsletter = public_newsletter_or_404(request, slug)
    if newsletter is None:
        return render_page(request, "newsletters/not_found.html", status=404)
    context = {
        "newsletter": newsletter,
        "form": SubscribeForm(initial={"newsletter": newsletter.slug}),
        "issues": issues_sent(newsletter=newsletter),
    }
    return page_render(request, "publishing/newsletter.html", context, newsletter=newsletter)


@require_safe
def issue_page(request, slug, issue_slug):
    """The web version of an issue that is going out or has gone out.

    Sending counts: every email links here, and a send at a limited rate takes hours.
    """
    newsletter = public_newsletter_or_404(request, slug)
    issue = (
        get_object_or_404(
            Issue,
            newsletter=newsletter,
            slug=issue_slug,
            # Paused or cancelled, it reached some readers, whose emails link here.
            status__in=[
                Issue.Status.SENDING,
                Issue.Status.PAUSED,
                Issue.Status.SENT,
                Issue.Status.CANCELLED,
            ],
        )
        if newsletter
        else None
    )
    if issue is None:
        return render_page(request, "newsletters/not_found.html", status=404)
    context = {"newsletter": newsletter, "issue": issue, "body_html": mark_safe(issue.body_html)}
    return page_render(request, "publishing/issue.html", context, newsletter=newsletter)


@require_safe
def issue_image(request, name):
    """An image uploaded into an issue's body (``issue_image_add``), from the site's storage.

    Names are random and never reused, so the answer may be cached for a year.
    Only names the upload gave out are served: nothing else in the storage is reachable.
    """
    if not image_name_valid(name) or not default_storage.exists(f"{IMAGE_DIRECTORY}/{name}"):
        raise Http404
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(
        default_storage.open(f"{IMAGE_DIRECTORY}/{name}"), content_type=content_type
    )
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
