"""The suppression list: addresses that are never mailed, and the one way off it.

Unsubscribes from another service hold for the newsletter they were imported into (the
person left that list, not every list); everything that says the address itself must
not be mailed (cleaned, bounced, complained, blocklisted) holds for every newsletter.
Rows are matched by ``email_hash`` so that an erased address (its ``email`` blanked)
stays suppressed. Only the person lifts a suppression: by confirming a new double
opt-in (``newsletters.services.subscription_confirm`` calls ``suppression_lift``).
"""

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from signalpost.newsletters.cells import formula_escape
from signalpost.newsletters.endings import subscription_ended_save
from signalpost.newsletters.models import Newsletter, Subscription, Suppression
from signalpost.newsletters.writes import (
    SuppressionRow,
    live_subscription_ids_of,
    suppressed_hashes_among,
    suppression_keys_among,
    suppressions_insert,
)
from signalpost.signals import address_suppressed, suppression_lifted

Reason = Suppression.Reason
Status = Subscription.Status

# The only reason that holds for one newsletter: the rest say the address must not be mailed.
NEWSLETTER_REASONS = frozenset({Reason.UNSUBSCRIBED})
# What a live subscription becomes when its address is suppressed.
ENDED_STATUS = {
    Reason.UNSUBSCRIBED: (Status.UNSUBSCRIBED, "unsubscribed_at"),
    Reason.BLOCKLISTED: (Status.UNSUBSCRIBED, "unsubscribed_at"),
    Reason.CLEANED: (Status.BOUNCED, "bounced_at"),
    Reason.BOUNCED: (Status.BOUNCED, "bounced_at"),
    Reason.COMPLAINED: (Status.COMPLAINED, "complained_at"),
}
LIVE_STATUSES = (Status.PENDING, Status.ACTIVE)


def email_hash(email: str) -> str:
    """SHA-256 of the (already normalised) address, in hex: what suppression rows match."""
    return hashlib.sha256(email.encode()).hexdigest()


def suppression_scope(*, reason: str, newsletter: Newsletter | None) -> Newsletter | None:
    """The newsletter a suppression for ``reason`` holds for; ``None``: every newsletter."""
    return newsletter if reason in NEWSLETTER_REASONS else None


def _covering(newsletter: Newsletter | None) -> Q:
    if newsletter is None:
        return Q(newsletter__isnull=True)
    return Q(newsletter__isnull=True) | Q(newsletter=newsletter)


def address_is_suppressed(*, email: str, newsletter: Newsletter | None) -> bool:
    """Return whether ``email`` (normalised) may not be mailed about ``newsletter``
    (``None``: whether it may not be mailed at all).

    For one newsletter it asks by ``suppressed_hashes_among``, a statement written
    out once: every sign-up asks this, and compiling the ORM's query cost more
    than the rest of the check (bench/subscribe_worker.py --profile)."""
    if newsletter is not None:
        hashes = [email_hash(email)]
        return bool(suppressed_hashes_among(hashes=hashes, newsletter_id=newsletter.pk))
    return Suppression.objects.filter(_covering(newsletter), email_hash=email_hash(email)).exists()


def suppressed_among(*, hashes: Sequence[str], newsletter: Newsletter) -> set[str]:
    """Return which of ``hashes`` are suppressed for ``newsletter``: one query for a batch."""
    if not hashes:
        return set()
    return suppressed_hashes_among(hashes=hashes, newsletter_id=newsletter.pk)


@transaction.atomic
def suppressions_add(
    *,
    entries: Iterable[tuple[str, str, datetime | None]],
    newsletter: Newsletter | None,
    source: str,
) -> int:
    """Put each ``(email, reason, suppressed_at)`` on the list; return how many were new.

    ``email`` is normalised already. An unsubscribe holds for ``newsletter``, any other
    reason for every newsletter (``suppression_scope``); an address already suppressed
    there keeps its first row. Every pending or active subscription the new rows cover
    ends (``user_unsubscribed``, reason ``suppressed: <reason>``), and
    ``address_suppressed`` is sent once per newsletter scope and reason with the
    addresses newly suppressed. Set-based: an import batch is one call.
    """
    now = timezone.now()
    row_source = source[:40]
    # (email_hash, newsletter id or None) -> the row to write (writes.SuppressionRow) and
    # the scope: plain tuples, not Suppression objects (~6 µs each, 5,000 an import batch).
    wanted: dict[tuple[str, int | None], tuple[SuppressionRow, Newsletter | None]] = {}
    for email, reason, at in entries:
        scope = suppression_scope(reason=reason, newsletter=newsletter)
        hashed = email_hash(email)
        scope_id = scope.pk if scope else None
        if (hashed, scope_id) not in wanted:
            wanted[hashed, scope_id] = (
                (email, hashed, scope_id, reason, row_source, at or now),
                scope,
            )
    if not wanted:
        return 0
    existing = suppression_keys_among(hashes=list({hashed for hashed, _ in wanted}))
    fresh = [written for key, written in wanted.items() if key not in existing]
    suppressions_insert(rows=[row for row, _ in fresh])
    groups: dict[tuple[int | None, str], tuple[Newsletter | None, list[str]]] = {}
    for (email, _, scope_id, reason, _, _), scope in fresh:
        groups.setdefault((scope_id, reason), (scope, []))[1].append(email)
    for (_, reason), (scope, emails) in groups.items():
        _subscriptions_end(emails=emails, newsletter=scope, reason=reason)
        address_suppressed.send(
            sender=Suppression, emails=emails, newsletter=scope, reason=reason, source=source
        )
    return len(fresh)


def _subscriptions_end(*, emails: list[str], newsletter: Newsletter | None, reason: str) -> None:
    """End the pending or active subscriptions of ``emails`` that a new suppression covers."""
    # Usually none: an export's unsubscribed and cleaned addresses are rarely subscribed here.
    found = live_subscription_ids_of(
        emails=emails, statuses=LIVE_STATUSES, newsletter_id=newsletter.pk if newsletter else None
    )
    if not found:
        return
    # Only the subscriptions are locked: two import writers must not queue on a newsletter.
    # Their status is asked again under the lock (it may have changed since).
    subscriptions = Subscription.objects.select_for_update(of=("self",)).filter(
        pk__in=found, status__in=LIVE_STATUSES
    )
    status, timestamp_field = ENDED_STATUS[Reason(reason)]
    now = timezone.now()
    for subscription in subscriptions.select_related("profile", "newsletter").order_by("pk"):
        subscription_ended_save(
            subscription=subscription,
            status=status,
            timestamp_field=timestamp_field,
            reason=f"suppressed: {reason}",
            now=now,
        )


def suppression_lift(*, subscription: Subscription) -> int:
    """The person confirmed ``subscription`` (a new double opt-in): lift what kept their
    address from its newsletter (its own suppression and any for every newsletter).

    Runs in the caller's transaction; sends ``suppression_lifted`` when there was one;
    returns how many rows went. Suppressions for other newsletters stay.
    """
    email = subscription.profile.email
    deleted, _ = (
        Suppression.objects.filter(_covering(subscription.newsletter))
        .filter(email_hash=email_hash(email))
        .delete()
    )
    if deleted:
        suppression_lifted.send(
            sender=Suppression,
            user_email=email,
            newsletter=subscription.newsletter,
            subscription=subscription,
        )
    return deleted


def suppressions_forget_address(*, email: str) -> int:
    """Erasure: blank the address on its suppression rows, keeping the hash (the address
    stays suppressed; nobody can read it back). Runs in the caller's transaction."""
    return Suppression.objects.filter(email_hash=email_hash(email)).update(email="")


def suppressions_search(queryset: QuerySet[Suppression], term: str) -> QuerySet[Suppression]:
    """``queryset`` narrowed to ``term``: a whole address matches its hash too (so an erased
    address is found), anything else a part of the address."""
    term = term.strip().lower()
    if not term:
        return queryset
    return queryset.filter(Q(email__icontains=term) | Q(email_hash=email_hash(term)))


EXPORT_COLUMNS = ["email", "email_sha256", "newsletter", "reason", "source", "suppressed_at"]


def suppressions_export(*, suppressions: QuerySet[Suppression]) -> Iterator[str]:
    """Yield CSV lines of ``suppressions`` (``newsletter`` empty: every newsletter), streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[str]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(EXPORT_COLUMNS)
    rows = (
        suppressions.order_by("id")
        .values_list("email", "email_hash", "newsletter__slug", "reason", "source", "suppressed_at")
        .iterator(chunk_size=2000)
    )
    for email, hashed, slug, reason, source, at in rows:
        yield line([formula_escape(email), hashed, slug or "", reason, source, at.isoformat()])
