"""Reads of engagement: the redirect's target, who engaged, and an issue's report."""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from signalpost.engagement.models import Engagement, Kind
from signalpost.newsletters.models import Subscription
from signalpost.publishing.models import Delivery, Issue

# Unsubscribes and complaints this long after an issue went out count as its doing.
ATTRIBUTION_DAYS = 7
CHART_HOURS = 48
COMPARED_ISSUES = 5


# Each process keeps the link lists of the issues it redirected for lately: a list is
# fixed when its issue starts sending (``issue_send``), so a redirect needs no query.
# Bounded in size and in age, should a send be cancelled and the issue sent again.
LINKS_CACHE_SECONDS = 60.0
LINKS_CACHE_ISSUES = 256
_links_cache: dict[int, tuple[float, tuple[str, ...]]] = {}


def issue_tracked_link(*, issue_id: int, index: int) -> str | None:
    """The URL an issue's tracked link ``index`` goes to, or None if it has none such.

    Reads the issue's links once a minute per process (``LINKS_CACHE_SECONDS``); the
    answer is the one a query would give now, for any link list fixed that long.
    """
    links = _issue_links(issue_id)
    if not 0 <= index < len(links):
        return None
    return links[index] or None  # "": not a URL (a list written by hand)


def _issue_links(issue_id: int) -> tuple[str, ...]:
    now = time.monotonic()
    cached = _links_cache.get(issue_id)
    if cached is not None and now - cached[0] < LINKS_CACHE_SECONDS:
        return cached[1]
    stored = Issue.objects.filter(pk=issue_id).values_list("tracked_links", flat=True)[:1]
    found = next(iter(stored), None)
    links = tuple(url if isinstance(url, str) else "" for url in found or ())
    if links:  # a draft's (empty) list may still be fixed by its sending
        if len(_links_cache) >= LINKS_CACHE_ISSUES:
            _links_cache.clear()
        _links_cache[issue_id] = (now, links)
    return links


def profiles_engaged(
    *, issues: Iterable[Issue | int] | QuerySet[Issue], kind: str = Kind.CLICK, human: bool = True
) -> "QuerySet[Engagement, Any]":
    """The ids of the profiles that clicked (or opened) any of ``issues``, as a subquery.

    For segments ("clicked any of the last 3 issues"): filter subscriptions with
    ``profile_id__in=profiles_engaged(...)``. Only people still subscribed have rows
    naming them; machine events count only with ``human=False``.
    """
    rows = Engagement.objects.filter(issue__in=issues, kind=kind, profile__isnull=False)
    if human:
        rows = rows.filter(is_human=True)
    return rows.values("profile_id").distinct()


def issues_last_sent(*, newsletter_id: int, count: int) -> list[int]:
    """The ids of newsletter ``newsletter_id``'s last ``count`` sent issues.

    Sent: the send finished (an issue still going out, such as the one a segment is
    chosen for, is not one of them); latest ``sent_at`` first, on the (newsletter,
    status, sent_at) index. A list, not a subquery: with the ids written out, the
    database reads only those issues' engagement rows on the (issue, kind, is_human,
    profile) index instead of scanning every issue's (bench/README.md, Segments).
    """
    sent = Issue.objects.filter(newsletter_id=newsletter_id, status=Issue.Status.SENT)
    return list(sent.order_by("-sent_at", "-pk").values_list("pk", flat=True)[:count])


def profiles_engaged_lately(
    *, newsletter_id: int, count: int, kind: str
) -> "QuerySet[Engagement, Any]":
    """The profiles that clicked (or opened) any of the newsletter's last ``count`` sent issues.

    What a segment's engagement condition selects (``newsletters.segments``, which gets it
    from this app's ``ready``: the newsletters layer cannot import this one).
    """
    return profiles_engaged(
        issues=issues_last_sent(newsletter_id=newsletter_id, count=count), kind=kind
    )


@dataclass
class LinkRow:
    index: int
    url: str
    clicks: int = 0
    unique: int = 0
    filtered: int = 0


@dataclass
class Counts:
    """Human events (total and unique people) and the machine ones filtered out."""

    total: int = 0
    unique: int = 0
    filtered: int = 0


@dataclass
class IssueReport:
    issue: Issue
    delivered: int
    failed: int
    bounced: int
    complaints: int
    unsubscribes: int
    clicks: Counts
    opens: Counts
    links: list[LinkRow]
    # (hour since the send started, human clicks in it), 48 of them
    clicks_by_hour: list[tuple[int, int]]
    previous: list["IssueSummary"] = field(default_factory=list)
    aggregate_only: bool = False
    tracks_opens: bool = False

    @property
    def click_rate(self) -> float | None:
        return self.clicks.unique / self.delivered if self.delivered else None


@dataclass
class IssueSummary:
    issue: Issue
    delivered: int
    unique_clicks: int
    human_clicks: int
    unsubscribes: int

    @property
    def click_rate(self) -> float | None:
        return self.unique_clicks / self.delivered if self.delivered else None


def _delivery_counts(issue: Issue) -> dict[str, int]:
    rows = Delivery.objects.filter(issue=issue).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def _attribution_window(issue: Issue) -> tuple[datetime, datetime]:
    """From the send's start to 7 days later, or to the next issue's send if sooner."""
    start = issue.sending_started_at or issue.sent_at or issue.created_at
    end = start + timedelta(days=ATTRIBUTION_DAYS)
    later = (
        Issue.objects.filter(newsletter_id=issue.newsletter_id, sending_started_at__gt=start)
        .order_by("sending_started_at")
        .values_list("sending_started_at", flat=True)
        .first()
    )
    return start, min(end, later) if later else end


def _recipients_ended(issue: Issue, *, moment_field: str) -> int:
    """The issue's recipients whose subscription ended (unsubscribed_at, complained_at)
    within its attribution window."""
    start, end = _attribution_window(issue)
    recipients = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT).values(
        "profile_id"
    )
    return Subscription.objects.filter(
        newsletter_id=issue.newsletter_id,
        profile_id__in=recipients,
        **{f"{moment_field}__gte": start, f"{moment_field}__lt": end},
    ).count()


def _counts(issue: Issue, kind: str) -> Counts:
    totals = Engagement.objects.filter(issue=issue, kind=kind).aggregate(
        total=Count("id", filter=Q(is_human=True)),
        unique=Count("id", filter=Q(is_human=True, is_first=True)),
        filtered=Count("id", filter=Q(is_human=False)),
    )
    return Counts(**totals)


def _links(issue: Issue) -> list[LinkRow]:
    rows = {index: LinkRow(index=index, url=url) for index, url in enumerate(issue.tracked_links)}
    counted = (
        Engagement.objects.filter(issue=issue, kind=Kind.CLICK)
        .values("link_index")
        .annotate(
            clicks=Count("id", filter=Q(is_human=True)),
            unique=Count("profile_id", filter=Q(is_human=True), distinct=True),
            filtered=Count("id", filter=Q(is_human=False)),
        )
    )
    for row in counted:
        link = rows.get(row["link_index"]) if row["link_index"] is not None else None
        if link is not None:
            link.clicks, link.unique, link.filtered = row["clicks"], row["unique"], row["filtered"]
    return list(rows.values())


def _clicks_by_hour(issue: Issue) -> list[tuple[int, int]]:
    start = issue.sending_started_at or issue.sent_at or timezone.now()
    hours = [0] * CHART_HOURS
    moments = Engagement.objects.filter(
        issue=issue,
        kind=Kind.CLICK,
        is_human=True,
        occurred_at__gte=start,
        occurred_at__lt=start + timedelta(hours=CHART_HOURS),
    ).values_list("occurred_at", flat=True)
    for moment in moments.iterator():
        hours[int((moment - start).total_seconds() // 3600)] += 1
    return list(enumerate(hours))


def issue_summary(*, issue: Issue) -> IssueSummary:
    """The headline figures of ``issue``, for comparing issues."""
    clicks = _counts(issue, Kind.CLICK)
    return IssueSummary(
        issue=issue,
        delivered=_delivery_counts(issue).get(Delivery.Status.SENT, 0),
        unique_clicks=clicks.unique,
        human_clicks=clicks.total,
        unsubscribes=_recipients_ended(issue, moment_field="unsubscribed_at"),
    )


def issues_previous(*, issue: Issue, limit: int = COMPARED_ISSUES) -> list[Issue]:
    """The newsletter's issues sent before ``issue``, latest first."""
    start = issue.sending_started_at or timezone.now()
    return list(
        Issue.objects.filter(
            newsletter_id=issue.newsletter_id, sending_started_at__lt=start
        ).order_by("-sending_started_at")[:limit]
    )


def issue_report(*, issue: Issue) -> IssueReport:
    """Everything the report of ``issue`` shows (staff page, API, CSV)."""
    deliveries = _delivery_counts(issue)
    newsletter = issue.newsletter
    return IssueReport(
        issue=issue,
        delivered=deliveries.get(Delivery.Status.SENT, 0),
        failed=deliveries.get(Delivery.Status.FAILED, 0),
        bounced=deliveries.get(Delivery.Status.BOUNCED, 0),
        complaints=_recipients_ended(issue, moment_field="complained_at"),
        unsubscribes=_recipients_ended(issue, moment_field="unsubscribed_at"),
        clicks=_counts(issue, Kind.CLICK),
        opens=_counts(issue, Kind.OPEN),
        links=_links(issue),
        clicks_by_hour=_clicks_by_hour(issue),
        previous=[issue_summary(issue=earlier) for earlier in issues_previous(issue=issue)],
        aggregate_only=newsletter.engagement_aggregate_only,
        tracks_opens=newsletter.track_opens,
    )
