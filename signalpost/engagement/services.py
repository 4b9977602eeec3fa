"""Record clicks and opens: one insert on the request, judged and counted in batches after.

The redirect answers after one short insert into the inbox (``hit_record``); the
workers' heartbeat (``hits_record``) takes the hits older than the judging window,
judges each (``judge``), writes the ``Engagement`` rows, sends ``link_clicked`` /
``email_opened`` (their receivers' rows held back and written together) and deletes the
hits, all in one transaction: a hit is recorded exactly once, whichever worker gets it
(``SKIP LOCKED``).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from signalpost.conf import conf
from signalpost.engagement.models import Engagement, Hit, Kind, Machine
from signalpost.engagement.writes import hit_insert
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.writes import receiver_rows_held_back
from signalpost.publishing.models import Delivery
from signalpost.signals import email_opened, link_clicked


def hit_record(
    *, issue_id: int, delivery_id: int, kind: str, link_index: int | None, agent: str
) -> None:
    """Put one click or open in the inbox, as the redirect saw it now, in its own transaction.

    One statement (``writes.hit_insert``) whose commit does not wait for the disk:
    only a crash of the database server itself within a fraction of a second could
    lose it, and the redirect answers without waiting for a flush.
    """
    hit_insert(
        issue_id=issue_id,
        delivery_id=delivery_id,
        kind=kind,
        link_index=link_index,
        agent=agent,
        at=timezone.now(),
    )


@dataclass(frozen=True)
class _Context:
    """What judging a batch of hits needs besides the hits themselves."""

    deliveries: dict[int, Delivery]
    # delivery id -> the click hits of that delivery still in the inbox (settled or not)
    clicks: dict[int, list[Hit]]
    # (issue id, profile id, kind) of people who already have a human event recorded
    seen: set[tuple[int, int, str]]
    # (newsletter id, profile id) of active subscriptions
    subscribed: set[tuple[int, int]]


def judge(hit: Hit, *, delivery: Delivery, clicks: Iterable[Hit]) -> str:
    """Return why ``hit`` is a machine's (a ``Machine`` value), or ``""`` for a person's.

    In order: what the request showed (``hit.agent``: a scanner's user agent, a HEAD,
    an image proxy); within ``ENGAGEMENT_EARLY_SECONDS`` of the delivery's sending;
    a click within ``ENGAGEMENT_BURST_SECONDS`` of a click on another link of the same
    message (scanners fetch every link at once; a person cannot).
    """
    if hit.agent:
        return hit.agent
    if delivery.sent_at and hit.at - delivery.sent_at < timedelta(
        seconds=conf.ENGAGEMENT_EARLY_SECONDS
    ):
        return Machine.EARLY
    if hit.kind == Kind.CLICK:
        window = timedelta(seconds=conf.ENGAGEMENT_BURST_SECONDS)
        if any(
            other.link_index != hit.link_index and abs(other.at - hit.at) <= window
            for other in clicks
        ):
            return Machine.BURST
    return Machine.HUMAN


def hits_record(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Judge and record up to ``limit`` hits that are past the judging window; return how many.

    A hit waits ``ENGAGEMENT_SETTLE_SECONDS`` in the inbox so that the rest of a
    scanner's burst is there when it is judged.
    """
    settled = (now or timezone.now()) - timedelta(seconds=conf.ENGAGEMENT_SETTLE_SECONDS)
    with transaction.atomic():
        hits = list(
            Hit.objects.filter(at__lte=settled)
            .order_by("id")
            .select_for_update(skip_locked=True)[:limit]
        )
        if not hits:
            return 0
        context = _context(hits)
        recorded = [
            (hit, _engagement(hit, context))
            for hit in hits
            if hit.delivery_id in context.deliveries
        ]
        Engagement.objects.bulk_create([engagement for _hit, engagement in recorded])
        Hit.objects.filter(pk__in=[hit.pk for hit in hits]).delete()
        # The receivers' rows (a person's activity row, a webhook's task row) go in one
        # INSERT per table at the end of the batch, not one per click.
        with receiver_rows_held_back():
            for hit, engagement in recorded:
                _signal_send(engagement, delivery=context.deliveries[hit.delivery_id], hit=hit)
    return len(hits)


def hits_record_all(*, now: datetime | None = None, limit: int = 1000) -> int:
    """``hits_record`` until no settled hit is left; return how many were recorded."""
    total = 0
    while recorded := hits_record(now=now, limit=limit):
        total += recorded
    return total


def _context(hits: list[Hit]) -> _Context:
    delivery_ids = {hit.delivery_id for hit in hits}
    deliveries = {
        delivery.pk: delivery
        for delivery in Delivery.objects.filter(pk__in=delivery_ids).select_related(
            "issue__newsletter", "profile"
        )
    }
    clicks: dict[int, list[Hit]] = defaultdict(list)
    for hit in Hit.objects.filter(delivery_id__in=delivery_ids, kind=Kind.CLICK):
        clicks[hit.delivery_id].append(hit)
    profile_ids = {d.profile_id for d in deliveries.values() if d.profile_id}
    issue_ids = {d.issue_id for d in deliveries.values()}
    seen = set(
        Engagement.objects.filter(
            issue_id__in=issue_ids, profile_id__in=profile_ids, is_human=True, is_first=True
        ).values_list("issue_id", "profile_id", "kind")
    )
    subscribed = set(
        Subscription.objects.filter(
            profile_id__in=profile_ids, status=Subscription.Status.ACTIVE
        ).values_list("newsletter_id", "profile_id")
    )
    return _Context(deliveries=deliveries, clicks=clicks, seen=seen, subscribed=subscribed)


def _engagement(hit: Hit, context: _Context) -> Engagement:
    """The ``Engagement`` row of ``hit``, noting a person's first human event in ``context``."""
    delivery = context.deliveries[hit.delivery_id]
    newsletter = delivery.issue.newsletter
    machine = judge(hit, delivery=delivery, clicks=context.clicks.get(hit.delivery_id, ()))
    profile_id = delivery.profile_id
    if newsletter.engagement_aggregate_only or (newsletter.pk, profile_id) not in (
        context.subscribed
    ):
        profile_id = None
    is_first = False
    if not machine and profile_id is not None:
        key = (delivery.issue_id, profile_id, hit.kind)
        is_first = key not in context.seen
        context.seen.add(key)
    return Engagement(
        newsletter=newsletter,
        issue_id=delivery.issue_id,
        profile_id=profile_id,
        kind=hit.kind,
        link_index=hit.link_index,
        is_human=not machine,
        machine=machine,
        is_first=is_first,
        occurred_at=hit.at,
    )


def _signal_send(engagement: Engagement, *, delivery: Delivery, hit: Hit) -> None:
    profile = delivery.profile if engagement.profile_id is not None else None
    common = {"delivery": delivery, "issue": delivery.issue, "profile": profile}
    if hit.kind == Kind.OPEN:
        email_opened.send(sender=Engagement, is_human=engagement.is_human, **common)
        return
    links = delivery.issue.tracked_links
    url = links[hit.link_index] if hit.link_index is not None else ""
    link_clicked.send(sender=Engagement, url=url, is_human=engagement.is_human, **common)


def engagement_forget(*, profile_id: int, newsletter_id: int | None = None) -> int:
    """Make a person's engagement anonymous (of one newsletter, or all); return the rows.

    The counts stay; who made them goes. Runs in the caller's transaction.
    """
    rows = Engagement.objects.filter(profile_id=profile_id)
    if newsletter_id is not None:
        rows = rows.filter(newsletter_id=newsletter_id)
    return rows.update(profile=None)
