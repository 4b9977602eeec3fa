"""Reads of issues, their progress and the subscriber growth the dashboard draws."""

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.mail.messages import Message
from signalpost.newsletters.models import Newsletter, Subscription, Suppression
from signalpost.newsletters.selectors import segment_subscriptions
from signalpost.postgresql.estimates import EXACT_BELOW, rows_estimate
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


def issue_preview_message(
    *,
    issue: Issue,
    subject: str,
    body_html: str,
    preview_text: str | None = None,
    reader: Profile | None = None,
) -> Message:
    """Return the ``mail.messages.Message`` a sample recipient would get of ``issue`` with
    this ``subject``, (rendered) ``body_html`` and ``preview_text`` (``None``: the
    issue's), nothing saved: the newsletter's template, its CSS inlined, personalised
    for ``reader`` or else a made-up one (Ada, whose links lead to no real subscription)."""
    draft = Issue(
        pk=issue.pk,
        newsletter=issue.newsletter,
        subject=subject,
        slug=issue.slug,
        body_markdown=issue.body_markdown,
        body_html=body_html,
        preview_text=issue.preview_text if preview_text is None else preview_text,
        status=issue.status,
    )
    reader = reader or Profile(pk=0, email=PREVIEW_READER_EMAIL, name=PREVIEW_READER_NAME)
    delivery = Delivery(pk=0, issue=draft, email=reader.email)
    return IssueMessages(draft).personalise(
        delivery, profile=reader, message_id=f"<issue-{issue.pk}.preview@preview>"
    )


PREVIEW_READER_NAME = "Ada"
PREVIEW_READER_EMAIL = "ada@example.com"


def issue_recipients_count(*, issue: Issue) -> int:
    """Return how many people ``issue`` goes (or went) to.

    Not sent yet: the newsletter's active subscribers counted now, exactly (what
    sending now would create deliveries for): those whose address is on the
    suppression list for the newsletter left out, by the condition the fan-out
    uses (``writes.deliveries_insert_chunk``). Sending or sent: the count its send
    started with.
    """
    if issue.status in {Issue.Status.DRAFT, Issue.Status.SCHEDULED}:
        if issue.segment is not None:
            recipients = segment_subscriptions(
                newsletter_id=issue.newsletter_id, rules=issue.segment.rules
            )
        else:
            recipients = Subscription.objects.filter(
                newsletter_id=issue.newsletter_id, status=Subscription.Status.ACTIVE
            )
        return recipients.exclude(_suppressed(newsletter_id=issue.newsletter_id)).count()
    return issue.recipient_count


def _suppressed(*, newsletter_id: int) -> Exists:
    """A subscription's address has a suppression for ``newsletter_id`` or for every
    newsletter: the fan-out's ``NOT EXISTS`` (by address, as it compares)."""
    return Exists(
        Suppression.objects.filter(
            Q(newsletter__isnull=True) | Q(newsletter_id=newsletter_id),
            email=OuterRef("profile__email"),
        )
    )


def progress_percent(*, issue: Issue, done: int, total: int) -> float:
    """Return how far a send is, in percent: finished deliveries of all of them."""
    if not total:
        return 100.0 if issue.sent_at else 0.0
    return round(100 * done / total, 1)


def deliveries_counts(*, issue_id: int) -> dict[str, int]:
    """Return how many of ``issue_id``'s deliveries are in each state (absent: none).

    One pass over the issue's rows: no index holds ``status`` (see ``Delivery.Meta``),
    so this reads every delivery of the issue, ~0.2 s at 1,000,000 (bench/README.md).
    """
    return dict(
        Delivery.objects.filter(issue_id=issue_id)
        .values_list("status")
        .annotate(count=Count("id"))
        .order_by()
    )


def deliveries_unclaimed(*, issue_id: int, statuses: Iterable[str]) -> QuerySet[Delivery]:
    """Return ``issue_id``'s deliveries in ``statuses`` that no batch holds, in the claim's
    index order (on PostgreSQL the rows' order in the table, about the order they were
    queued in): queued and held ones are always unclaimed, so this finds them through
    the claim's (issue, claimed_by) index.

    ``claimed_by <= ''`` (no text sorts before "") ordered by ``claimed_by``
    rather than ``claimed_by = ''`` ordered by id: PostgreSQL would read that
    order from the primary key instead, and once ANALYZE has seen that a third of
    the rows are unclaimed it does, filtering out every delivery sent before the
    first queued one (258 ms a claim at 1,000,000, against 0.5 ms: bench/README.md,
    "A HOT sent mark"). Only the claim's index gives this order.
    """
    return Delivery.objects.filter(
        issue_id=issue_id, claimed_by__lte="", status__in=list(statuses)
    ).order_by("claimed_by")


def deliveries_unclaimed_exist(*, issue_id: int, statuses: Iterable[str]) -> bool:
    """Whether ``deliveries_unclaimed`` finds any: the first by its index, not ``EXISTS``
    (which drops the order, and with it the index, for a scan of the whole table)."""
    first = deliveries_unclaimed(issue_id=issue_id, statuses=statuses).values_list("id")[:1]
    return bool(list(first))


def issue_progress(*, issue: Issue) -> dict[str, Any]:
    """Return a send's progress: counts by state, rate and expected finish."""
    return _progress_of(issue, deliveries_counts(issue_id=issue.pk))


def issues_progress(issues: Iterable[Issue]) -> dict[int, dict[str, Any]]:
    """Return ``issue_progress`` of each sending or sent issue of ``issues``, by id, for a
    list of issues: a sent one's from the cache when counted in the last
    ``FINISHED_PROGRESS_SECONDS``, the others' counted by one query for them all."""
    started = {
        issue.pk: issue
        for issue in issues
        if issue.status in (Issue.Status.SENDING, Issue.Status.SENT)
    }
    keys = {pk: _sent_progress_key(issue) for pk, issue in started.items()}
    cached = cache.get_many([key for key in keys.values() if key])
    progress = {pk: cached[key] for pk, key in keys.items() if key in cached}
    missing = [pk for pk in started if pk not in progress]
    counts: dict[int, dict[str, int]] = {pk: {} for pk in missing}
    rows = (
        Delivery.objects.filter(issue_id__in=missing)
        .values_list("issue_id", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    for issue_id, status, count in rows if missing else []:
        counts[issue_id][status] = count
    fresh = {pk: _progress_of(started[pk], counts[pk]) for pk in missing}
    cache.set_many(
        {keys[pk]: value for pk, value in fresh.items() if keys[pk]}, FINISHED_PROGRESS_SECONDS
    )
    return {**progress, **fresh}


def _progress_of(issue: Issue, stored: dict[str, int]) -> dict[str, Any]:
    counts = dict.fromkeys(Delivery.Status.values, 0)
    counts.update(stored)
    total = sum(counts.values())
    done = sum(counts[status] for status in FINISHED)
    remaining = counts["queued"] + counts["sending"] + counts["held"]
    # Until the last chunk is prepared the total is a count so far, not the total.
    preparing = issue.preparing
    now = timezone.now()
    end = issue.sent_at or now
    elapsed = (end - issue.sending_started_at).total_seconds() if issue.sending_started_at else 0
    rate = counts["sent"] / elapsed if elapsed > 0 else 0.0
    eta = now + timedelta(seconds=remaining / rate) if rate and remaining else None
    if preparing:
        eta = None
    return {
        "issue": issue.pk,
        "status": issue.status,
        "preparing": preparing,
        "total": total,
        "sent": counts["sent"],
        "failed": counts["failed"] + counts["bounced"],
        "skipped": counts["skipped"],
        "cancelled": counts["cancelled"],
        "remaining": remaining,
        "held": counts["held"],
        "percent": 0.0 if preparing else progress_percent(issue=issue, done=done, total=total),
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


def send_preparing_live(*, issue_id: int) -> QuerySet[DBTaskResult[Any, Any]]:
    """Return the preparing task of an issue's send, if one is waiting or running."""
    from signalpost.publishing.tasks import issue_prepare

    return DBTaskResult.objects.filter(
        status__in=LIVE_TASK,
        task_path=issue_prepare.module_path,
        args_kwargs__kwargs__issue_id=issue_id,
    )


def claimers_live(claimers: Iterable[str]) -> set[str]:
    """Return which of ``claimers`` (deliveries' ``claimed_by``) are tasks waiting or running.

    A batch claims deliveries in its task's id; a task rerun after its worker
    died is READY again and takes its claims back. Any other claimer is gone.
    """
    tasks = _claimer_tasks(claimers)
    return {claimer for claimer, status in tasks.items() if status in LIVE_TASK}


# A claimer whose task row is gone (pruned after TASK_RESULTS_RETENTION_DAYS) never
# claims again: once its deliveries were read and none was in flight, it is
# remembered so for a day, not read again on every heartbeat of a long send.
CLAIMS_SETTLED_SECONDS = 86_400


def claimers_stranded(*, issue_id: int) -> set[str]:
    """Return the claimers of ``issue_id``'s deliveries still ``sending`` whose batch is gone.

    Gone: its task is neither waiting nor running and did not succeed, or is no
    task at all. A batch that succeeded handled every delivery it had claimed
    (sent, failed, or given back), so only the others' deliveries are read, by
    ``claimed_by`` (no index holds ``status``). While a send goes well that is
    none: this costs one index probe per batch (``delivery_claimers``) and one
    read of their tasks, ~30 ms for a send to 1,000,000 (bench/README.md).
    """
    claimers = delivery_claimers(issue_id=issue_id)
    tasks = _claimer_tasks(claimers)
    settled_key = f"signalpost:claims-settled:{issue_id}"
    settled: set[str] = cache.get(settled_key) or set()
    over = {
        claimer
        for claimer in claimers - settled
        if tasks.get(claimer) not in (*LIVE_TASK, TaskResultStatus.SUCCESSFUL)
    }
    if not over:
        return set()
    stranded = set(
        Delivery.objects.filter(
            issue_id=issue_id, claimed_by__in=over, status=Delivery.Status.SENDING
        )
        .values_list("claimed_by", flat=True)
        .distinct()
    )
    taskless = {claimer for claimer in over - stranded if claimer not in tasks}
    if taskless:
        cache.set(settled_key, settled | taskless, CLAIMS_SETTLED_SECONDS)
    return stranded


def _claimer_tasks(claimers: Iterable[str]) -> dict[str, str]:
    """Return the status of each of ``claimers`` that is a task (by its id)."""
    ids: list[uuid.UUID] = []
    for claimer in claimers:
        try:
            ids.append(uuid.UUID(claimer))
        except ValueError:
            continue
    rows = DBTaskResult.objects.filter(id__in=ids).values_list("id", "status")
    return {str(task_id): status for task_id, status in rows}


def delivery_claimers(*, issue_id: int) -> set[str]:
    """Return every ``claimed_by`` among ``issue_id``'s deliveries, "" left out.

    A loose index scan (a recursive query): one probe of the (issue, claimed_by)
    index per distinct claimer, ~2,000 batches for a send to 1,000,000, not
    one row per delivery. A claimer stays on the deliveries its batch sent.
    """
    table = connection.ops.quote_name(Delivery._meta.db_table)

    def following(after: str) -> str:
        return f"SELECT MIN(claimed_by) FROM {table} WHERE issue_id = %s AND claimed_by > {after}"

    sql = (
        f"WITH RECURSIVE claimers (claimer) AS ({following("''")} UNION ALL "
        f"SELECT ({following('claimers.claimer')}) FROM claimers "
        "WHERE claimers.claimer IS NOT NULL) SELECT claimer FROM claimers WHERE claimer IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [issue_id, issue_id])
        return {claimer for (claimer,) in cursor.fetchall()}


# A finished send's counts change only by late bounces: the dashboard may show
# them this many seconds old rather than count a million deliveries on every load.
FINISHED_PROGRESS_SECONDS = 600
# The growth chart reads every subscription (three aggregates): at most this often.
GROWTH_SECONDS = 300


def sends_latest(*, limit: int = 10) -> list[tuple[Issue, dict[str, Any]]]:
    """Return the latest issues sending or sent, newest first, with their progress.

    A sent issue's progress comes from the cache when counted in the last
    ``FINISHED_PROGRESS_SECONDS``; a send in progress is counted each time.
    """
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
    progress = issues_progress(issues)
    return [(issue, progress[issue.pk]) for issue in issues]


def subscribers_new_and_lost(*, days: int = 30) -> list[tuple[date, int, int]]:
    """Return ``[(date, new, lost)]`` for each of the last ``days`` days, all newsletters.

    New: subscriptions that became active that day; lost: subscriptions that ended
    that day (unsubscribed, bounced or complained). Two aggregate queries.
    """
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    subscriptions = Subscription.objects.filter(subscribed_at__isnull=False).annotate(
        ended_at=Coalesce("unsubscribed_at", "bounced_at", "complained_at")
    )
    new = dict(
        subscriptions.filter(subscribed_at__gte=start)
        .annotate(day=TruncDate("subscribed_at"))
        .values_list("day")
        .annotate(count=Count("id"))
        .order_by()
    )
    lost = dict(
        subscriptions.filter(ended_at__gte=start)
        .annotate(day=TruncDate("ended_at"))
        .values_list("day")
        .annotate(count=Count("id"))
        .order_by()
    )
    dates = [first + timedelta(days=offset) for offset in range(days)]
    return [(day, new.get(day, 0), lost.get(day, 0)) for day in dates]


def _sent_progress_key(issue: Issue) -> str:
    """The cache key of a sent issue's progress, or "" for one still sending."""
    if issue.status != Issue.Status.SENT or issue.sent_at is None:
        return ""
    return f"signalpost:sent-progress:{issue.pk}:{issue.sent_at.timestamp()}"


def _subscriptions_many() -> bool:
    """Whether the charts are worth caching: past ``EXACT_BELOW`` subscriptions (PostgreSQL's
    estimate; never on SQLite). Below that they cost a few milliseconds and stay current."""
    estimate = rows_estimate(Subscription.objects.all())
    return estimate is not None and estimate >= EXACT_BELOW


def subscriber_growth_recent(*, days: int = 30) -> tuple[list[date], dict[Newsletter, list[int]]]:
    """``subscriber_growth``; on a large list computed at most every ``GROWTH_SECONDS``."""
    if not _subscriptions_many():
        return subscriber_growth(days=days)
    key = f"signalpost:growth:{timezone.localdate().isoformat()}:{days}"
    growth = cache.get_or_set(key, lambda: subscriber_growth(days=days), GROWTH_SECONDS)
    return cast(tuple[list[date], dict[Newsletter, list[int]]], growth)


def subscribers_new_and_lost_recent(*, days: int = 30) -> list[tuple[date, int, int]]:
    """``subscribers_new_and_lost``; on a large list computed at most every ``GROWTH_SECONDS``."""
    if not _subscriptions_many():
        return subscribers_new_and_lost(days=days)
    key = f"signalpost:new-and-lost:{timezone.localdate().isoformat()}:{days}"
    flow = cache.get_or_set(key, lambda: subscribers_new_and_lost(days=days), GROWTH_SECONDS)
    return cast(list[tuple[date, int, int]], flow)


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
