"""Reads of issues, their progress and the subscriber growth the dashboard draws."""

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.mail.messages import Message
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.rendering import IssueMessages


def issues_sent(*, newsletter: Newsletter) -> QuerySet[Issue]:
    """Return ``newsletter``'s sent issues, newest first."""
    return Issue.objects.filter(newsletter=newsletter, status=Issue.Status.SENT).order_by(
        "-sent_at"
    )


FINISHED = [
    Delivery.Status.SENT,
    Delivery.Status.FAILED,
    Delivery.Status.BOUNCED,
    Delivery.Status.SKIPPED,
    Delivery.Status.CANCELLED,
]


def issue_send_halted(*, issue_id: int) -> bool:
    """Whether the send of ``issue_id`` must stop sending messages now.

    The one place that decides it: every task that sends (or prepares) a send's
    messages asks here between small groups of messages, so a pause or a
    cancel (``issue_pause``, ``issue_cancel``) stops every worker within
    ``tasks.HALT_RECHECK_SECONDS``. True unless the issue is sending: paused,
    cancelled, finished or deleted. One primary-key read of one column.
    """
    status = Issue.objects.filter(pk=issue_id).values_list("status", flat=True).first()
    return status != Issue.Status.SENDING


def issue_preview_message(*, issue: Issue, subject: str, body_html: str) -> Message:
    """Return the ``mail.messages.Message`` a sample recipient would get of ``issue`` with
    this ``subject`` and (rendered) ``body_html``, nothing saved: the newsletter's
    template, its CSS inlined, personalised for a made-up reader (Ada, whose links
    lead to no real subscription)."""
    draft = Issue(
        pk=issue.pk,
        newsletter=issue.newsletter,
        subject=subject,
        slug=issue.slug,
        body_markdown=issue.body_markdown,
        body_html=body_html,
        status=issue.status,
    )
    sample = Profile(pk=0, email=PREVIEW_READER_EMAIL, name=PREVIEW_READER_NAME)
    delivery = Delivery(pk=0, issue=draft, email=PREVIEW_READER_EMAIL)
    return IssueMessages(draft).personalise(
        delivery, profile=sample, message_id=f"<issue-{issue.pk}.preview@preview>"
    )


PREVIEW_READER_NAME = "Ada"
PREVIEW_READER_EMAIL = "ada@example.com"


def issue_recipients_count(*, issue: Issue) -> int:
    """Return how many people ``issue`` goes (or went) to.

    Not sent yet: the newsletter's active subscribers counted now, exactly (what
    sending now would create deliveries for). Sending or sent: the count its
    send started with.
    """
    if issue.status in {Issue.Status.DRAFT, Issue.Status.SCHEDULED}:
        return Subscription.objects.filter(
            newsletter_id=issue.newsletter_id, status=Subscription.Status.ACTIVE
        ).count()
    return issue.recipient_count


def progress_percent(*, issue: Issue, done: int, total: int) -> float:
    """Return how far a send is, in percent: finished deliveries of all of them."""
    if not total:
        return 100.0 if issue.sent_at else 0.0
    return round(100 * done / total, 1)


def issues_with_delivery_counts(queryset: QuerySet[Issue]) -> QuerySet[Issue]:
    """Annotate each issue with ``deliveries_total``, ``_sent``, ``_failed`` (bounced
    too) and ``_finished``, for a list of issues with their progress.

    A subquery per count rather than a join: a join's GROUP BY counts every
    delivery of every issue before a page of them is cut out; a subquery reads
    the issues shown only.
    """

    def count(*statuses: str) -> Coalesce:
        deliveries = Delivery.objects.filter(issue=OuterRef("pk"))
        if statuses:
            deliveries = deliveries.filter(status__in=statuses)
        counted = deliveries.order_by().values("issue").annotate(count=Count("pk"))
        return Coalesce(Subquery(counted.values("count")), 0)

    return queryset.annotate(
        deliveries_total=count(),
        deliveries_sent=count(Delivery.Status.SENT),
        deliveries_failed=count(Delivery.Status.FAILED, Delivery.Status.BOUNCED),
        deliveries_finished=count(*FINISHED),
    )


def issue_progress(*, issue: Issue) -> dict[str, Any]:
    """Return a send's progress: counts by state, rate and expected finish."""
    counts = dict.fromkeys(Delivery.Status.values, 0)
    counts.update(
        Delivery.objects.filter(issue=issue)
        .values_list("status")
        .annotate(count=Count("id"))
        .order_by()
    )
    total = sum(counts.values())
    done = sum(counts[status] for status in FINISHED)
    remaining = counts["queued"] + counts["sending"] + counts["held"]
    now = timezone.now()
    end = issue.sent_at or now
    elapsed = (end - issue.sending_started_at).total_seconds() if issue.sending_started_at else 0
    rate = counts["sent"] / elapsed if elapsed > 0 else 0.0
    eta = now + timedelta(seconds=remaining / rate) if rate and remaining else None
    return {
        "issue": issue.pk,
        "status": issue.status,
        "total": total,
        "sent": counts["sent"],
        "failed": counts["failed"] + counts["bounced"],
        "skipped": counts["skipped"],
        "cancelled": counts["cancelled"],
        "remaining": remaining,
        "held": counts["held"],
        "percent": progress_percent(issue=issue, done=done, total=total),
        "rate_per_second": round(rate, 1),
        "elapsed_seconds": round(elapsed, 1),
        "expected_finish": eta,
    }


LIVE_TASK = [TaskResultStatus.READY, TaskResultStatus.RUNNING]


def sends_in_progress() -> QuerySet[Issue]:
    """Return the issues being sent."""
    return Issue.objects.filter(status=Issue.Status.SENDING).order_by("pk")


def send_batches_live(*, issue_id: int) -> QuerySet[DBTaskResult[Any, Any]]:
    """Return the batch tasks of an issue waiting (or scheduled for a retry) or running."""
    from signalpost.publishing.tasks import issue_send_batch

    return DBTaskResult.objects.filter(
        status__in=LIVE_TASK,
        task_path=issue_send_batch.module_path,
        args_kwargs__kwargs__issue_id=issue_id,
    )


def claimers_live(claimers: Iterable[str]) -> set[str]:
    """Return which of ``claimers`` (deliveries' ``claimed_by``) are tasks waiting or running.

    A batch claims deliveries in its task's id; a task rerun after its worker
    died is READY again and takes its claims back. Any other claimer is gone.
    """
    ids: list[uuid.UUID] = []
    for claimer in claimers:
        try:
            ids.append(uuid.UUID(claimer))
        except ValueError:
            continue
    live = DBTaskResult.objects.filter(id__in=ids, status__in=LIVE_TASK).values_list(
        "id", flat=True
    )
    return {str(task_id) for task_id in live}


def sends_latest(*, limit: int = 10) -> list[tuple[Issue, dict[str, Any]]]:
    """Return the latest issues sending or sent, newest first, with their progress."""
    issues = (
        Issue.objects.filter(
            status__in=[
                Issue.Status.SENDING,
                Issue.Status.PAUSED,
                Issue.Status.SENT,
                Issue.Status.CANCELLED,
            ]
        )
        .select_related("newsletter")
        .order_by("-sending_started_at")[:limit]
    )
    return [(issue, issue_progress(issue=issue)) for issue in issues]


def subscriber_growth(*, days: int = 30) -> tuple[list[date], dict[Newsletter, list[int]]]:
    """Return ``(dates, {newsletter: [active subscribers at the end of each date]})``.

    Three aggregate queries whatever the list sizes: subscribers before the
    window, then starts and ends per newsletter per day inside it.
    """
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    ended_at = Coalesce("unsubscribed_at", "bounced_at", "complained_at")
    subscriptions = Subscription.objects.filter(subscribed_at__isnull=False).annotate(
        ended_at=ended_at
    )
    baseline = dict(
        subscriptions.filter(subscribed_at__lt=start)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=start))
        .values_list("newsletter")
        .annotate(count=Count("id"))
        .order_by()
    )
    starts = (
        subscriptions.filter(subscribed_at__gte=start)
        .annotate(day=TruncDate("subscribed_at"))
        .values_list("newsletter", "day")
        .annotate(count=Count("id"))
        .order_by()
    )
    ends = (
        subscriptions.filter(ended_at__gte=start)
        .annotate(day=TruncDate("ended_at"))
        .values_list("newsletter", "day")
        .annotate(count=Count("id"))
        .order_by()
    )
    dates = [first + timedelta(days=offset) for offset in range(days)]
    change: dict[tuple[int, date], int] = {}
    for newsletter_id, day, count in starts:
        change[(newsletter_id, day)] = change.get((newsletter_id, day), 0) + count
    for newsletter_id, day, count in ends:
        change[(newsletter_id, day)] = change.get((newsletter_id, day), 0) - count
    series: dict[Newsletter, list[int]] = {}
    for newsletter in Newsletter.objects.order_by("name"):
        running = baseline.get(newsletter.pk, 0)
        points = []
        for day in dates:
            running += change.get((newsletter.pk, day), 0)
            points.append(running)
        series[newsletter] = points
    return dates, series
