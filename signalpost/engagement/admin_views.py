"""The staff report of an issue: HTML page and CSV of its links."""

import csv

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from signalpost.engagement.charts import clicks_chart
from signalpost.engagement.selectors import issue_report
from signalpost.newsletters.cells import formula_escape
from signalpost.publishing.models import Issue

staff_view = permission_required("publishing.view_issue", raise_exception=True)


def _issue(issue_id: int) -> Issue:
    return get_object_or_404(Issue.objects.select_related("newsletter"), pk=issue_id)


@require_safe
@staff_member_required
@staff_view
def issue_report_page(request: HttpRequest, issue_id: int) -> HttpResponse:
    """What became of one issue: deliveries, unsubscribes, people's clicks and opens."""
    issue = _issue(issue_id)
    report = issue_report(issue=issue)
    context = {
        **admin.site.each_context(request),
        "opts": Issue._meta,
        "title": f"Report: {issue.subject}",
        "issue": issue,
        "change_url": reverse("admin:publishing_issue_change", args=[issue.pk]),
        "report": report,
        "chart": clicks_chart(report.clicks_by_hour),
    }
    return render(request, "admin/engagement/report.html", context)


@require_safe
@staff_member_required
@staff_view
def issue_links_csv(request: HttpRequest, issue_id: int) -> HttpResponse:
    """The report's per-link table as CSV (one row per link of the issue, in order)."""
    issue = _issue(issue_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="issue-{issue.pk}-links.csv"'
    writer = csv.writer(response)
    writer.writerow(["position", "url", "human_clicks", "unique_people", "filtered_clicks"])
    for link in issue_report(issue=issue).links:
        writer.writerow(
            [link.index + 1, formula_escape(link.url), link.clicks, link.unique, link.filtered]
        )
    return response
