from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from signalpost.newsletters.forms import SubscribeForm
from signalpost.newsletters.models import Newsletter
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issues_sent


def public_newsletter_or_404(request, slug):
    newsletter = get_object_or_404(Newsletter.objects.prefetch_related("topics"), slug=slug)
    return newsletter if newsletter.is_public else None


@require_safe
def newsletter_page(request, slug):
    """A newsletter's page: what it is, a subscribe form, its archive."""
    newsletter = public_newsletter_or_404(request, slug)
    if newsletter is None:
        return render(request, "newsletters/not_found.html", status=404)
    context = {
        "newsletter": newsletter,
        "form": SubscribeForm(initial={"newsletter": newsletter.slug}),
        "issues": issues_sent(newsletter=newsletter),
    }
    return render(request, "publishing/newsletter.html", context)


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
            status__in=[Issue.Status.SENDING, Issue.Status.SENT],
        )
        if newsletter
        else None
    )
    if issue is None:
        return render(request, "newsletters/not_found.html", status=404)
    context = {"newsletter": newsletter, "issue": issue, "body_html": mark_safe(issue.body_html)}
    return render(request, "publishing/issue.html", context)
