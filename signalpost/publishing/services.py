"""Writing, scheduling and sending issues. Each function is one transaction."""

import imaplib
import io
import itertools
import logging
import math
import poplib
import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import F, Max
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, ImageOps, UnidentifiedImageError

from signalpost.accounts.models import Profile
from signalpost.accounts.services import email_normalize
from signalpost.conf import conf
from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import task_enqueue
from signalpost.mail import bounces, mailboxes
from signalpost.mail.messages import Message
from signalpost.mail.transport import message_send
from signalpost.newsletters.models import Newsletter, Segment, Subscription
from signalpost.newsletters.services import bounce_record
from signalpost.newsletters.suppressions import address_is_suppressed
from signalpost.publishing.models import PREVIEW_TEXT_MAX_LENGTH, Delivery, Issue
from signalpost.publishing.rendering import (
    IssueMessages,
    MarkdownRefused,
    markdown_to_html,
    markdown_to_html_for_preview,
)
from signalpost.publishing.selectors import (
    claimers_stranded,
    deliveries_counts,
    deliveries_unclaimed,
    deliveries_unclaimed_exist,
    issue_send_halted,
    send_batches_live,
    send_preparing_live,
    sends_in_progress,
)
from signalpost.publishing.tracking import links_find
from signalpost.publishing.writes import deliveries_insert_chunk
from signalpost.redaction import addresses_redact
from signalpost.signals import (
    delivery_failed,
    issue_cancelled,
    issue_paused,
    issue_resumed,
    issue_sending_started,
    issue_sent,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Issue slugs share /n/<newsletter>/ with these pages.
RESERVED_SLUGS = {"feed", "confirm", "unsubscribe"}
SUBJECT_MAX_LENGTH = 200
# A body this long renders in ~0.3 s (0.8 s with this machine's 2 cores busy),
# well inside SIGNALPOST_MARKDOWN_RENDER_TIMEOUT; twice as long came near it
# (docs/decisions.md; bench/README.md, Hostile Markdown). Gmail clips past 102 kB anyway.
BODY_MAX_LENGTH = 100_000
EDITABLE = {Issue.Status.DRAFT, Issue.Status.SCHEDULED}
# issue_update's default for scheduled_at: a caller changing only the text
# must not unschedule the issue by leaving the time out.
KEEP = object()


def issue_validate(
    *,
    subject: str,
    body_markdown: str,
    scheduled_at: datetime | None = None,
    preview_text: str = "",
) -> None:
    """Raise ValidationError, by field, if the issue's text or a new scheduled time is refused.

    Pass ``scheduled_at`` only when it is new: a time kept from before may have passed.
    """
    errors: dict[str, str] = {}
    if not subject or not subject.strip():
        errors["subject"] = "An issue needs a subject."
    elif len(subject) > SUBJECT_MAX_LENGTH:
        errors["subject"] = f"A subject has at most {SUBJECT_MAX_LENGTH} characters."
    elif any(character in subject for character in "\r\n"):
        errors["subject"] = "A subject is one line."
    elif "\x00" in subject:
        errors["subject"] = "A subject cannot contain NUL characters."
    if len(body_markdown) > BODY_MAX_LENGTH:
        errors["body_markdown"] = f"The body has at most {BODY_MAX_LENGTH} characters."
    elif "\x00" in body_markdown:
        errors["body_markdown"] = "The body cannot contain NUL characters."
    if scheduled_at is not None and scheduled_at <= timezone.now():
        errors["scheduled_at"] = "A scheduled time must be in the future."
    if len(preview_text) > PREVIEW_TEXT_MAX_LENGTH:
        errors["preview_text"] = (
            f"The preview text has at most {PREVIEW_TEXT_MAX_LENGTH} characters."
        )
    elif _CONTROL_CHARACTERS.search(preview_text):
        errors["preview_text"] = (
            "The preview text is one line, without control characters (line breaks, tabs, NUL)."
        )
    if errors:
        raise ValidationError(errors)


# Line breaks (header injection, were the text ever put in a header), NUL and the rest.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _issue_slug_for(*, newsletter: Newsletter, subject: str, exclude_pk: int | None = None) -> str:
    """Return a slug from ``subject``, unique within ``newsletter`` and not reserved."""
    base = slugify(subject)[:90] or "issue"
    taken = set(
        Issue.objects.filter(newsletter=newsletter, slug__startswith=base)
        .exclude(pk=exclude_pk)  # type: ignore[misc]  # pk=None excludes nothing
        .values_list("slug", flat=True)
    )
    slug, number = base, 1
    while slug in taken or slug in RESERVED_SLUGS:
        number += 1
        slug = f"{base}-{number}"
    return slug


def issue_render(*, body_markdown: str) -> str:
    """Return the body's HTML; raise ``ValidationError`` naming it if it cannot be rendered.

    Every caller (API, admin, commands) renders through here. Rendering takes
    at most ``SIGNALPOST_MARKDOWN_RENDER_TIMEOUT`` seconds (1.5 by default; a
    long body is refused past it, see ``rendering.markdown_to_html``), so
    callers render before their transaction opens: on SQLite an open
    transaction holds the one write lock. Rendering the same body twice in a
    row costs nothing the second time.
    """
    try:
        return markdown_to_html(body_markdown)
    except MarkdownRefused as error:
        raise ValidationError({"body_markdown": str(error)}) from error


def issue_render_preview(*, body_markdown: str) -> str:
    """``issue_render`` for the writing page's live preview: the same HTML, but parts of a
    long body already rendered are not rendered again (``markdown_to_html_for_preview``)."""
    try:
        return markdown_to_html_for_preview(body_markdown)
    except MarkdownRefused as error:
        raise ValidationError({"body_markdown": str(error)}) from error


def issue_create(
    *,
    newsletter: Newsletter,
    subject: str,
    body_markdown: str,
    created_by: "User | None" = None,
    scheduled_at: datetime | None = None,
    preview_text: str = "",
) -> Issue:
    """Create a draft issue with its HTML rendered; return it.

    ``scheduled_at`` is only remembered: ``issue_schedule`` schedules the draft.
    ``preview_text`` is what inboxes show after the subject (blank: the body's first
    sentence).
    """
    issue_validate(
        subject=subject,
        body_markdown=body_markdown,
        scheduled_at=scheduled_at,
        preview_text=preview_text,
    )
    body_html = issue_render(body_markdown=body_markdown)
    with transaction.atomic():
        return Issue.objects.create(
            newsletter=newsletter,
            subject=subject.strip(),
            slug=_issue_slug_for(newsletter=newsletter, subject=subject),
            body_markdown=body_markdown,
            body_html=body_html,
            preview_text=preview_text.strip(),
            created_by=created_by,
            scheduled_at=scheduled_at,
        )


def issue_update(
    *,
    issue: Issue,
    subject: str,
    body_markdown: str,
    scheduled_at: Any = KEEP,  # a datetime, None, or KEEP
    preview_text: Any = KEEP,  # a str, or KEEP
) -> Issue:
    """Change a draft or scheduled issue's text and time; a sending or sent issue cannot change.

    A scheduled issue given a new time is rescheduled (through ``issue_schedule``),
    and given ``None`` becomes a draft; a draft's time is only remembered. Leaving
    ``scheduled_at`` out keeps the time and the schedule as they are; leaving
    ``preview_text`` out keeps it.
    """
    issue_validate(
        subject=subject,
        body_markdown=body_markdown,
        preview_text="" if preview_text is KEEP else preview_text,
    )
    body_html = issue_render(body_markdown=body_markdown)
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=issue.pk)
        if issue.status not in EDITABLE:
            raise ValidationError(f"A {issue.status} issue cannot be changed.")
        moved = scheduled_at is not KEEP and scheduled_at != issue.scheduled_at
        if moved and scheduled_at is not None:
            issue_validate(subject=subject, body_markdown=body_markdown, scheduled_at=scheduled_at)
        issue.subject = subject.strip()
        issue.body_markdown = body_markdown
        issue.body_html = body_html
        if preview_text is not KEEP:
            issue.preview_text = preview_text.strip()
        issue.save(
            update_fields=["subject", "body_markdown", "body_html", "preview_text", "updated_at"]
        )
        if moved and issue.status == Issue.Status.SCHEDULED:
            if scheduled_at is None:
                issue_unschedule(issue=issue)
            else:
                issue_schedule(issue=issue, at=scheduled_at)
            issue.refresh_from_db()
        elif moved:
            issue.scheduled_at = scheduled_at
            issue.save(update_fields=["scheduled_at", "updated_at"])
        return issue


@transaction.atomic
def issue_schedule(*, issue: Issue, at: datetime) -> Issue:
    """Send ``issue`` at ``at`` (or now, if ``at`` has passed); return it."""
    from signalpost.publishing.tasks import issue_send_when_due

    issue = Issue.objects.select_for_update().get(pk=issue.pk)
    if issue.status not in EDITABLE:
        raise ValidationError(f"A {issue.status} issue cannot be scheduled.")
    issue.status = Issue.Status.SCHEDULED
    issue.scheduled_at = at
    issue.save(update_fields=["status", "scheduled_at", "updated_at"])
    # A task per scheduling; one that finds the schedule changed does nothing.
    issue_send_when_due.using(run_after=at).enqueue(issue_id=issue.pk, scheduled_at=at.isoformat())
    return issue


@transaction.atomic
def issue_unschedule(*, issue: Issue) -> bool:
    """Turn a scheduled issue back into a draft."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
        status=Issue.Status.DRAFT, scheduled_at=None
    )
    return bool(updated)


@transaction.atomic
def issue_send(*, issue: Issue) -> bool:
    """Start sending ``issue`` to every active subscriber now; return whether this call did.

    Returns at once whatever the list's size: it fixes who the recipients are
    (the subscriptions active at this moment: a later subscriber does not get
    the issue, one who leaves before their message goes out does not either)
    and queues the first ``issue_prepare`` task; workers create the deliveries
    in chunks (``issue_prepare_chunk``) and send them in batches as each chunk
    lands. Sending an issue that is already sending or sent does nothing and
    returns ``False``.
    """
    issue = Issue.objects.select_for_update().get(pk=issue.pk)
    if issue.status not in EDITABLE:
        return False
    last_id = Subscription.objects.aggregate(last=Max("id"))["last"] or 0
    issue.status = Issue.Status.SENDING
    issue.segment_rules = issue.segment.rules if issue.segment is not None else None
    issue.sending_started_at = issue.recipients_until = timezone.now()
    issue.recipients_last_subscription_id = last_id
    issue.prepared_through_id = 0
    issue.prepared_at = None
    issue.recipient_count = 0
    # What each tracked link's index names, fixed with the body from now on.
    issue.tracked_links = links_find(issue.body_html)
    issue.save(
        update_fields=[
            "tracked_links",
            "status",
            "segment_rules",
            "sending_started_at",
            "recipients_until",
            "recipients_last_subscription_id",
            "prepared_through_id",
            "prepared_at",
            "recipient_count",
            "updated_at",
        ]
    )
    _prepare_enqueue(issue_id=issue.pk, after_id=0)
    return True


@transaction.atomic
def issue_segment_set(*, issue: Issue, segment: Segment | None) -> Issue:
    """Send a draft or scheduled ``issue`` to ``segment``'s subscribers only (``None``: to
    every subscriber); raise ``ValidationError`` for another newsletter's segment or an
    issue that is sending or sent."""
    issue = Issue.objects.select_for_update().get(pk=issue.pk)
    if issue.status not in EDITABLE:
        raise ValidationError({"segment": f"A {issue.status} issue cannot change its audience."})
    if segment is not None and segment.newsletter_id != issue.newsletter_id:
        raise ValidationError({"segment": "That segment belongs to another newsletter."})
    issue.segment = segment
    issue.save(update_fields=["segment", "updated_at"])
    return issue


def _prepare_enqueue(*, issue_id: int, after_id: int) -> None:
    from signalpost.publishing.tasks import issue_prepare

    task_enqueue(issue_prepare, issue_id=issue_id, after_id=after_id)


def _batches_enqueue(*, issue_id: int, deliveries: int) -> int:
    """Queue enough batch tasks for ``deliveries`` more queued deliveries; return how many."""
    from signalpost.publishing.tasks import issue_send_batch

    batches = math.ceil(deliveries / conf.SEND_BATCH_SIZE)
    for _ in range(batches):
        task_enqueue(issue_send_batch, issue_id=issue_id)
    return batches


def issue_prepare_chunk(*, issue_id: int, after_id: int) -> bool:
    """Create the deliveries of a send's chunk of subscriptions after ``after_id``, queue
    their batches and the next chunk's ``issue_prepare`` task; return whether one follows.

    One transaction with the issue locked, in which the cursor
    (``prepared_through_id``) moves with the rows it covers: a chunk whose
    cursor has moved on (its task ran again after its worker died) does
    nothing, so no delivery is created twice and the chain never forks. A
    halted send (``selectors.issue_send_halted``) or one no longer sending prepares nothing
    and stops; the workers' ``sends_recover`` goes on once it is resumed. The
    last chunk records the recipient count, sends ``issue_sending_started``
    and finishes the send if every delivery is out already.
    """
    with transaction.atomic():
        issue = Issue.objects.select_for_update().select_related("newsletter").get(pk=issue_id)
        if not issue.preparing or issue.prepared_through_id != after_id:
            return False
        if issue_send_halted(issue_id=issue_id):
            return False
        chunk = deliveries_insert_chunk(
            issue_id=issue_id,
            newsletter_id=issue.newsletter_id,
            after_id=after_id,
            last_id=issue.recipients_last_subscription_id or 0,
            until=issue.recipients_until or issue.sending_started_at or timezone.now(),
            size=conf.SEND_PREPARE_CHUNK_SIZE,
            segment_rules=issue.segment_rules,
        )
        _batches_enqueue(issue_id=issue_id, deliveries=chunk.created)
        issue.prepared_through_id = chunk.through_id
        update_fields = ["prepared_through_id", "updated_at"]
        if chunk.last:
            issue.prepared_at = timezone.now()
            issue.recipient_count = Delivery.objects.filter(issue_id=issue_id).count()
            update_fields += ["prepared_at", "recipient_count"]
        issue.save(update_fields=update_fields)
        if not chunk.last:
            _prepare_enqueue(issue_id=issue_id, after_id=chunk.through_id)
            return True
        issue_sending_started.send(
            sender=Issue,
            issue=issue,
            newsletter=issue.newsletter,
            recipient_count=issue.recipient_count,
        )
    issue_finish_if_done(issue_id=issue_id)
    return False


ERROR_MAX_LENGTH = 2000


def error_for_storage(reason: str) -> str:
    """What is kept of a mail server's error: without addresses, at most 2,000 characters.

    SMTP replies name the recipient (``550 5.1.1 <jane@example.com>: ...``, and
    smtplib's refusal is keyed by it), and a batch's error lands on other people's
    deliveries too. The delivery row says whose it is; the error need not.
    """
    return addresses_redact(reason)[:ERROR_MAX_LENGTH]


@transaction.atomic
def deliveries_claim(*, issue_id: int, claimer: str, limit: int) -> list[int]:
    """Claim up to ``limit`` queued deliveries of an issue for ``claimer``; return their ids.

    A claimer that ran before (a task rerun after its worker died) gets back
    the deliveries it had claimed and not finished first. Other claimers skip
    rows being claimed (SKIP LOCKED), so workers never wait for each other.
    """
    own = list(
        Delivery.objects.filter(
            issue_id=issue_id, status=Delivery.Status.SENDING, claimed_by=claimer
        ).values_list("id", flat=True)
    )
    if own:
        return own
    ids = sorted(
        deliveries_unclaimed(issue_id=issue_id, statuses=[Delivery.Status.QUEUED])
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)[:limit]
    )
    Delivery.objects.filter(id__in=ids).update(
        status=Delivery.Status.SENDING, claimed_by=claimer, attempts=F("attempts") + 1
    )
    return ids


def deliveries_release(
    *, issue_id: int, claimer: str, reason: str, suspect_id: int | None = None
) -> tuple[bool, int]:
    """Put ``claimer``'s unfinished deliveries back in the queue after its batch failed.

    ``suspect_id`` is the delivery being sent when it failed: that attempt
    counts, and at SEND_MAX_ATTEMPTS the delivery fails instead of going back,
    so a failure that repeats cannot send one message again and again. The
    others were never tried, so their claim does not count. Without a suspect
    (the batch failed before sending anything) every claim counts. Returns
    whether anything of the issue is queued now, and the highest attempt count
    among what this batch gave back, for the retry's backoff.
    """
    unfinished = Delivery.objects.filter(
        issue_id=issue_id, status=Delivery.Status.SENDING, claimed_by=claimer
    )
    if suspect_id is not None:
        unfinished.exclude(pk=suspect_id).update(
            status=Delivery.Status.QUEUED,
            claimed_by="",
            attempts=F("attempts") - 1,
            last_error=error_for_storage(reason),
        )
    limit = conf.SEND_MAX_ATTEMPTS
    for delivery in unfinished.filter(attempts__gte=limit).select_related("issue", "profile"):
        delivery_fail(
            delivery=delivery, reason=f"gave up after {delivery.attempts} attempts: {reason}"
        )
    most = unfinished.aggregate(most=Max("attempts"))["most"] or 0
    unfinished.update(
        status=Delivery.Status.QUEUED, claimed_by="", last_error=error_for_storage(reason)
    )
    queued = deliveries_unclaimed_exist(issue_id=issue_id, statuses=[Delivery.Status.QUEUED])
    return queued, max(most, 1)


@transaction.atomic
def deliveries_hold_back(*, issue_id: int, claimer: str, reason: str, hold: bool) -> int:
    """Give back a batch's unsent deliveries after the mail server refused the sender.

    The refusal is not the recipients': their claim does not count as an
    attempt and nobody's delivery fails. With ``hold`` (the batch's retries
    are spent) every queued delivery of the issue is held until staff fix the
    sender and resume the send (``issue_send_resume``); sending on would be
    refused alike. Returns how many deliveries are held.
    """
    Delivery.objects.filter(
        issue_id=issue_id, status=Delivery.Status.SENDING, claimed_by=claimer
    ).update(
        status=Delivery.Status.QUEUED,
        claimed_by="",
        attempts=F("attempts") - 1,
        last_error=error_for_storage(reason),
    )
    if not hold:
        return 0
    return deliveries_unclaimed(issue_id=issue_id, statuses=[Delivery.Status.QUEUED]).update(
        status=Delivery.Status.HELD, last_error=error_for_storage(reason)
    )


@transaction.atomic
def delivery_retry_later(*, delivery: Delivery, error: object) -> Delivery | None:
    """Put a delivery back in the queue after a temporary failure, or fail it at the limit."""
    if delivery.attempts >= send_retry_policy().max_attempts:
        reason = f"gave up after {delivery.attempts} attempts: {error}"
        return delivery_fail(delivery=delivery, reason=reason)
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.QUEUED, claimed_by="", last_error=error_for_storage(str(error))
    )
    return None


@transaction.atomic
def delivery_fail(*, delivery: Delivery, reason: str) -> Delivery:
    """Mark a delivery failed for good and send ``delivery_failed``."""
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.SENDING, Delivery.Status.QUEUED]
    ).update(status=Delivery.Status.FAILED, last_error=error_for_storage(reason))
    if updated:
        delivery.status = Delivery.Status.FAILED
        delivery_failed.send(
            sender=Delivery,
            delivery=delivery,
            issue=delivery.issue,
            profile=delivery.profile,
            user_email=delivery.email,
            reason=error_for_storage(reason),
        )
    return delivery


@transaction.atomic
def delivery_hard_bounce(*, delivery: Delivery, reason: str) -> list[Subscription]:
    """The recipient's server refused ``delivery``'s address for good: a hard bounce at once.

    For a ``5xx`` refusal with a ``5.1.x`` enhanced code during the SMTP
    transaction (no such user, bad address). Fails the delivery
    (``delivery_failed``) and records the hard bounce
    (``newsletters.services.bounce_record``), which ends every live
    subscription of the address; returns those subscriptions.
    """
    delivery_fail(delivery=delivery, reason=reason)
    return bounce_record(email=delivery.email, permanent=True, description=reason)


# Returned messages recorded per transaction by bounces_process.
BOUNCE_CHUNK = 100


@dataclass
class BounceRun:
    """What ``bounces_process`` did: messages by kind, and those it did not understand."""

    counts: dict[str, int] = field(default_factory=dict)
    not_understood: list[str] = field(default_factory=list)
    ended: int = 0


def bounces_process(*, mailbox_url: str, limit: int | None = None) -> BounceRun:
    """Read the bounce mailbox at ``mailbox_url``; record its bounces; delete what was handled.

    Each message is read (``mail.bounces.report_read``) and, when understood,
    recorded (``bounce_report_record``) and then deleted from the mailbox: hard
    and soft bounces, delays (not bounces) and automatic replies alike. Messages
    are recorded ``BOUNCE_CHUNK`` to a transaction and deleted once it has
    committed, so a crash leaves them to be read again, never lost. A message
    not understood stays in the mailbox and is listed in the result. At most
    ``limit`` messages when given. Raises ``mailboxes.MailboxError`` when the
    mailbox cannot be opened or read, or its TLS certificate does not verify
    (against ``BOUNCE_MAILBOX_CA_FILE`` when set).
    """
    run = BounceRun()
    with mailboxes.mailbox_open(mailbox_url, ca_file=conf.BOUNCE_MAILBOX_CA_FILE) as mailbox:
        try:
            messages = mailbox.messages()
            if limit is not None:
                messages = itertools.islice(messages, limit)
            while chunk := list(itertools.islice(messages, BOUNCE_CHUNK)):
                handled_keys = []
                with transaction.atomic():
                    for key, raw in chunk:
                        report = bounces.report_read(raw)
                        handled, ended = _bounce_report_record(report=report)
                        kind = report.kind if handled else bounces.UNKNOWN
                        run.counts[kind] = run.counts.get(kind, 0) + 1
                        run.ended += len(ended)
                        if handled:
                            handled_keys.append(key)
                        else:
                            description = report.description or "no subject"
                            run.not_understood.append(f"{key}: {description}")
                for key in handled_keys:
                    mailbox.delete(key)
        except (OSError, imaplib.IMAP4.error, poplib.error_proto) as error:
            raise mailboxes.MailboxError(f"the mailbox stopped answering: {error}") from None
    return run


@transaction.atomic
def bounce_report_record(*, report: bounces.Report) -> tuple[bool, list[Subscription]]:
    """Record what one returned message says; return (understood, subscriptions ended).

    Its recipient is the one our VERP token names (a delivery, whose status
    becomes ``bounced`` for a hard bounce, or a profile), else the report's own
    recipients. Hard and soft bounces go through ``bounce_record``; delays and
    automatic replies are understood and change nothing. A report that names
    nobody, or that nothing understood, is not understood.
    """
    return _bounce_report_record(report=report)


def _bounce_report_record(*, report: bounces.Report) -> tuple[bool, list[Subscription]]:
    """``bounce_report_record`` inside a transaction the caller holds (no savepoint of its own)."""
    if report.kind in (bounces.DELAYED, bounces.IGNORED):
        return True, []
    if report.kind not in (bounces.HARD, bounces.SOFT):
        return False, []
    addresses = list(report.recipients)
    if report.verp is not None:
        kind, pk = report.verp
        if kind == "d":
            delivery = Delivery.objects.filter(pk=pk).first()
            addresses = [delivery.email] if delivery is not None else []
            if delivery is not None and report.kind == bounces.HARD:
                Delivery.objects.filter(pk=pk, status=Delivery.Status.SENT).update(
                    status=Delivery.Status.BOUNCED,
                    last_error=error_for_storage(report.description),
                )
        else:
            profile = Profile.objects.filter(pk=pk).first()
            addresses = [profile.email] if profile is not None else []
    if not addresses:
        return False, []
    ended: list[Subscription] = []
    for address in addresses:
        ended += bounce_record(
            email=address,
            permanent=report.kind == bounces.HARD,
            description=report.description,
        )
    return True, ended


@transaction.atomic
def deliveries_skip_for(*, profile: Profile, newsletter: Newsletter) -> int:
    """Stop the unsent deliveries of ``newsletter``'s issues to ``profile``; return how many.

    Deliveries claimed by a batch in flight are stopped too: the batch re-reads
    which of its deliveries are still to send about every second.
    """
    return Delivery.objects.filter(
        profile=profile,
        issue__newsletter=newsletter,
        status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING, Delivery.Status.HELD],
    ).update(status=Delivery.Status.SKIPPED)


UNSENT = [Delivery.Status.QUEUED, Delivery.Status.SENDING, Delivery.Status.HELD]


@transaction.atomic
def issue_finish_if_done(*, issue_id: int) -> bool:
    """Mark the issue sent once no delivery is queued, in flight or held; return whether it was."""
    # Every batch asks; until the queue is empty they learn "not yet" from an
    # index probe (queued and held deliveries are unclaimed) instead of locking
    # the issue and counting every delivery. After that, the batches still in
    # flight (one or two per worker) each count: no index tells ``sending``
    # from ``sent``, so the sent mark stays a HOT update.
    if deliveries_unclaimed_exist(
        issue_id=issue_id, statuses=[Delivery.Status.QUEUED, Delivery.Status.HELD]
    ):
        return False
    issue = Issue.objects.select_for_update().select_related("newsletter").get(pk=issue_id)
    if issue.status != Issue.Status.SENDING or issue.preparing:
        return False
    counts = deliveries_counts(issue_id=issue_id)
    if _counted(counts, UNSENT):
        return False
    issue.status = Issue.Status.SENT
    issue.sent_at = timezone.now()
    issue.save(update_fields=["status", "sent_at", "updated_at"])
    issue_sent.send(
        sender=Issue,
        issue=issue,
        newsletter=issue.newsletter,
        sent_count=counts.get(Delivery.Status.SENT, 0),
        failed_count=counts.get(Delivery.Status.FAILED, 0),
    )
    return True


class SendStateRefused(ValidationError):
    """The issue's send is not in a state the action applies to (pausing a draft, say)."""


def _issue_lock(*, issue_id: int) -> Issue:
    return Issue.objects.select_for_update().select_related("newsletter").get(pk=issue_id)


def _deliveries_count(*, issue_id: int, statuses: Sequence[str]) -> int:
    return _counted(deliveries_counts(issue_id=issue_id), statuses)


def _counted(counts: dict[str, int], statuses: Sequence[str]) -> int:
    """How many of ``counts`` (``deliveries_counts``) are in any of ``statuses``."""
    return sum(counts.get(status, 0) for status in statuses)


@transaction.atomic
def issue_pause(*, issue: Issue) -> bool:
    """Pause a running send; return whether it was running (False: it was paused already).

    Only the issue's status changes here. Every batch asks ``issue_send_halted``
    between messages (at most ``tasks.HALT_RECHECK_SECONDS`` apart), so no worker
    starts another message of it within a second; each batch then gives its
    unsent deliveries back to the queue (``deliveries_give_back_halted``). A
    message already handed to the mail server is recorded as sent. Sends
    ``issue_paused`` once per pause. Raises ``SendStateRefused`` unless the
    issue is sending or paused.
    """
    locked = _issue_lock(issue_id=issue.pk)
    if locked.status == Issue.Status.PAUSED:
        return False
    if locked.status != Issue.Status.SENDING:
        raise SendStateRefused(
            {"status": f"A {locked.status} issue is not being sent: nothing to pause."}
        )
    locked.status = Issue.Status.PAUSED
    locked.save(update_fields=["status", "updated_at"])
    issue.status = locked.status
    counts = deliveries_counts(issue_id=locked.pk)
    issue_paused.send(
        sender=Issue,
        issue=locked,
        newsletter=locked.newsletter,
        sent_count=counts.get(Delivery.Status.SENT, 0),
        remaining_count=_counted(counts, UNSENT),
    )
    return True


@transaction.atomic
def issue_resume(*, issue: Issue) -> int:
    """Continue a paused (or stopped) send where it stopped; return the batch tasks queued.

    A paused issue becomes sending again and ``issue_resumed`` is sent; then, as
    for a send that stopped (``issue_send_resume``): held deliveries go back to
    the queue, claims of batches that died are released, and batch tasks are
    queued for what is queued and no live batch will take. Each delivery sent
    before the pause stays sent and is not sent again. On a send that is
    running this only restarts what is stranded. Raises ``SendStateRefused``
    unless the issue is paused or sending.
    """
    locked = _issue_lock(issue_id=issue.pk)
    if locked.status not in {Issue.Status.PAUSED, Issue.Status.SENDING}:
        raise SendStateRefused(
            {"status": f"A {locked.status} issue is not paused: nothing to resume."}
        )
    if locked.status == Issue.Status.PAUSED:
        locked.status = Issue.Status.SENDING
        locked.save(update_fields=["status", "updated_at"])
        issue_resumed.send(
            sender=Issue,
            issue=locked,
            newsletter=locked.newsletter,
            remaining_count=_deliveries_count(issue_id=locked.pk, statuses=UNSENT),
        )
    issue.status = locked.status
    return _send_restart(issue_id=locked.pk, release_held=True)


@transaction.atomic
def issue_cancel(*, issue: Issue) -> int:
    """End a running or paused send for good; return how many deliveries it cancelled.

    Every delivery not sent yet (queued, held, or claimed by a batch that is
    gone) becomes ``cancelled``, never ``failed``; a batch at work stops within
    a second (``issue_send_halted``) and cancels what it had claimed. Sends
    ``issue_cancelled`` once; cancelling again does nothing and returns 0.
    Raises ``SendStateRefused`` unless the issue is sending, paused or cancelled.
    """
    locked = _issue_lock(issue_id=issue.pk)
    if locked.status == Issue.Status.CANCELLED:
        return 0
    if locked.status not in {Issue.Status.PAUSED, Issue.Status.SENDING}:
        hint = " (unschedule it instead)" if locked.status == Issue.Status.SCHEDULED else ""
        raise SendStateRefused(
            {"status": f"A {locked.status} issue is not being sent: nothing to cancel{hint}."}
        )
    locked.status = Issue.Status.CANCELLED
    locked.save(update_fields=["status", "updated_at"])
    issue.status = locked.status
    cancelled = deliveries_unclaimed(
        issue_id=locked.pk, statuses=[Delivery.Status.QUEUED, Delivery.Status.HELD]
    ).update(status=Delivery.Status.CANCELLED)
    dead = claimers_stranded(issue_id=locked.pk)
    if dead:
        cancelled += Delivery.objects.filter(
            issue_id=locked.pk, status=Delivery.Status.SENDING, claimed_by__in=dead
        ).update(status=Delivery.Status.CANCELLED, claimed_by="")
    issue_cancelled.send(
        sender=Issue,
        issue=locked,
        newsletter=locked.newsletter,
        sent_count=_deliveries_count(issue_id=locked.pk, statuses=[Delivery.Status.SENT]),
        cancelled_count=cancelled,
    )
    return cancelled


@transaction.atomic
def deliveries_give_back_halted(*, issue_id: int, claimer: str, tried: bool = False) -> int:
    """Give back what a batch had claimed and not sent when its send halted; return how many.

    Paused: they go back to the queue, for the batches of the resume. Cancelled:
    they are cancelled. Sending again (resumed before this batch noticed the
    pause): back to the queue, with a batch task to send them. Locks the issue,
    so this and ``issue_cancel`` / ``issue_resume`` see each other whole. The
    claim counts as an attempt only if ``tried`` (a batch rerun after its
    worker died may have sent one of them without recording it).
    """
    issue = Issue.objects.select_for_update().filter(pk=issue_id).first()
    unsent = Delivery.objects.filter(
        issue_id=issue_id, status=Delivery.Status.SENDING, claimed_by=claimer
    )
    if issue is None:
        return 0
    if issue.status == Issue.Status.CANCELLED:
        return unsent.update(status=Delivery.Status.CANCELLED, claimed_by="")
    given_back = unsent.update(
        status=Delivery.Status.QUEUED,
        claimed_by="",
        attempts=F("attempts") if tried else F("attempts") - 1,
    )
    if given_back and issue.status == Issue.Status.SENDING:
        _batches_enqueue(issue_id=issue_id, deliveries=given_back)
    return given_back


def issue_send_resume(*, issue: Issue) -> int:
    """Restart a send that stopped; return how many batch tasks were queued.

    What ``manage.py send_issue --resume`` runs: deliveries held after the mail
    server kept refusing the sender (fixed since, presumably) are queued again,
    then as ``_issue_send_recover``. Safe beside the batches at work.
    """
    with transaction.atomic():
        return _send_restart(issue_id=issue.pk, release_held=True)


def _issue_send_recover(*, issue: Issue) -> int:
    """Restart a send that a failure left stranded, if it is; return the batch tasks queued.

    Workers run this for every send in progress (``sends_recover``), so a send
    finishes without anyone noticing the failure. A read-only look comes first:
    a send going well costs a few index probes and takes no write lock.
    """
    if not _send_stranded(issue_id=issue.pk):
        return 0
    with transaction.atomic():
        return _send_restart(issue_id=issue.pk)


def sends_recover() -> int:
    """Run ``_issue_send_recover`` for every send in progress; return the batch tasks queued."""
    queued = 0
    for issue in sends_in_progress():
        try:
            queued += _issue_send_recover(issue=issue)
        except DatabaseError:
            # A locked or restarting database: the next sweep tries again.
            logger.warning("Could not check the send of issue %s", issue.pk, exc_info=True)
    return queued


def _send_stranded(*, issue_id: int) -> bool:
    """Whether a send needs restarting: work that no batch task is waiting or running for,
    or a send still preparing (and not halted) without its preparing task."""
    if _preparing_stranded(issue_id=issue_id):
        return True
    if claimers_stranded(issue_id=issue_id):
        return True
    if send_batches_live(issue_id=issue_id).exists():
        # They take what is queued, and the last of them finishes the send.
        return False
    if deliveries_unclaimed_exist(issue_id=issue_id, statuses=[Delivery.Status.QUEUED]):
        return True
    # Held deliveries wait for staff (issue_send_resume), more deliveries for the
    # preparing task; otherwise only the final bookkeeping is missing (every
    # claim is with a live batch or none: ``claimers_stranded``).
    if Issue.objects.filter(pk=issue_id, prepared_at__isnull=True).exists():
        return False
    return not deliveries_unclaimed_exist(issue_id=issue_id, statuses=[Delivery.Status.HELD])


def _preparing_stranded(*, issue_id: int) -> bool:
    preparing = Issue.objects.filter(
        pk=issue_id, status=Issue.Status.SENDING, prepared_at__isnull=True
    ).exists()
    return (
        preparing
        and not issue_send_halted(issue_id=issue_id)
        and not send_preparing_live(issue_id=issue_id).exists()
    )


def _send_restart(*, issue_id: int, release_held: bool = False) -> int:
    """The work of ``issue_send_resume`` (``release_held``) and ``_issue_send_recover``, in
    the caller's transaction."""
    issue = Issue.objects.select_for_update().filter(pk=issue_id).first()
    if issue is None or issue.status != Issue.Status.SENDING:
        return 0
    if release_held:
        deliveries_unclaimed(issue_id=issue_id, statuses=[Delivery.Status.HELD]).update(
            status=Delivery.Status.QUEUED
        )
    restarted = 0
    if _preparing_stranded(issue_id=issue_id):
        # Its preparing task is gone (dead-lettered after the database failed
        # it again and again): the cursor on the issue says where to go on.
        _prepare_enqueue(issue_id=issue_id, after_id=issue.prepared_through_id)
        logger.warning("Restarted preparing the send of issue %s", issue_id)
        restarted = 1
    for claimer in claimers_stranded(issue_id=issue_id):
        # Its batch task failed and could not give them back (the database was
        # down for that too). It may have sent one of them without marking it,
        # so each claim counts as an attempt, as when any batch fails.
        deliveries_release(
            issue_id=issue_id,
            claimer=claimer,
            reason="its batch task ended without giving it back",
        )
    queued = deliveries_unclaimed(issue_id=issue_id, statuses=[Delivery.Status.QUEUED]).count()
    if not queued:
        issue_finish_if_done(issue_id=issue_id)
        return restarted
    # Batches still waiting take their share; a pause may have let others end early.
    missing = math.ceil(queued / conf.SEND_BATCH_SIZE) - (
        send_batches_live(issue_id=issue_id).count()
    )
    if missing <= 0:
        return restarted
    batches = _batches_enqueue(issue_id=issue_id, deliveries=missing * conf.SEND_BATCH_SIZE)
    logger.warning("Restarted the send of issue %s: %s batch task(s) queued", issue_id, batches)
    return restarted + batches


def send_retry_policy() -> RetryPolicy:
    """How a delivery is retried: ``SIGNALPOST_SEND_MAX_ATTEMPTS`` attempts in all; its batch
    waits 30 s after the first failure, doubling up to an hour, without jitter."""
    return RetryPolicy(
        max_attempts=conf.SEND_MAX_ATTEMPTS,
        backoff_base=30,
        backoff_max=3600,
        jitter=False,
    )


def retry_delay_seconds(attempts: int) -> float:
    """Return the seconds a batch waits after ``attempts`` failed attempts (30 after 0 or 1)."""
    return send_retry_policy().delay_after(max(1, attempts))


def retry_at(attempts: int) -> datetime:
    return timezone.now() + timedelta(seconds=retry_delay_seconds(attempts))


IMAGE_DIRECTORY = "issues"
IMAGE_MAX_BYTES = 5 * 1024 * 1024
# Decoded size: a small file can unpack to gigabytes of pixels (a decompression bomb).
IMAGE_MAX_PIXELS = 40_000_000
# Wider than any email column (600-700 px) at twice the density, no wider.
IMAGE_WIDTH = 1200
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
_IMAGE_NAME = re.compile(r"[0-9]+/[0-9a-f]{32}\.(?:jpg|png|gif|webp)")


def image_name_valid(name: str) -> bool:
    """Whether ``name`` (below ``IMAGE_DIRECTORY``) is one ``issue_image_add`` could give."""
    return bool(_IMAGE_NAME.fullmatch(name))


def issue_image_add(*, issue: Issue, upload: Any) -> str:
    """Store an image for ``issue``'s body; return its absolute URL, served from the site.

    ``upload`` is an uploaded file. It is decoded (Pillow) to prove it is a JPEG,
    PNG, GIF or WebP of at most ``IMAGE_MAX_BYTES`` and ``IMAGE_MAX_PIXELS``,
    turned upright, made at most ``IMAGE_WIDTH`` wide, and encoded again, which
    drops its metadata (camera, place). Stored once through Django's storage API
    under a random name; the issue itself does not change (the caller inserts
    the Markdown). Raises ``ValidationError`` on ``image`` saying what is wrong.
    """
    status = Issue.objects.filter(pk=issue.pk).values_list("status", flat=True).first()
    if status not in EDITABLE:
        raise ValidationError({"image": f"A {status} issue cannot be changed."})
    size = getattr(upload, "size", None) or 0
    if size > IMAGE_MAX_BYTES:
        raise ValidationError(
            {"image": f"An image has at most {IMAGE_MAX_BYTES // (1024 * 1024)} MB."}
        )
    if not size:
        raise ValidationError({"image": "The file is empty."})
    unreadable = "Not an image that can be read: upload a JPEG, PNG, GIF or WebP file."
    too_big = f"The image has more than {IMAGE_MAX_PIXELS:,} pixels."
    try:
        with warnings.catch_warnings():
            # IMAGE_MAX_PIXELS, checked below, is the limit; Pillow's own warns first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(upload)
        with opened:
            kind = opened.format or ""
            if kind not in IMAGE_FORMATS:
                raise ValidationError({"image": unreadable})
            if opened.width * opened.height > IMAGE_MAX_PIXELS:
                raise ValidationError({"image": too_big})
            image = ImageOps.exif_transpose(opened)
            if image.width > IMAGE_WIDTH:
                height = max(1, round(image.height * IMAGE_WIDTH / image.width))
                image = image.resize((IMAGE_WIDTH, height), Image.Resampling.LANCZOS)
            if kind == "JPEG" and image.mode not in {"RGB", "L"}:
                image = image.convert("RGB")
            encoded = io.BytesIO()
            image.save(encoded, format=kind, **({"quality": 85} if kind == "JPEG" else {}))
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        raise ValidationError({"image": too_big}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ValidationError({"image": unreadable}) from None
    name = default_storage.save(
        f"{IMAGE_DIRECTORY}/{issue.pk}/{uuid.uuid4().hex}.{IMAGE_FORMATS[kind]}",
        ContentFile(encoded.getvalue()),
    )
    path = reverse("signalpost:issue_image", args=[name.removeprefix(f"{IMAGE_DIRECTORY}/")])
    return f"{conf.SITE_URL}{path}"  # as newsletters.links.absolute


TEST_RECIPIENTS_MAX = 20


def test_recipients_parse(*, raw: str) -> list[str]:
    """Return the addresses in ``raw`` (separated by commas, semicolons or lines), each in
    its canonical form, without repeats; raise ``ValidationError`` on ``to_emails``
    naming every address refused and why, if there are none, or more than
    ``TEST_RECIPIENTS_MAX``. The same address rules as subscribing
    (``accounts.services.email_normalize``)."""
    pieces = [piece.strip() for piece in re.split(r"[,;\n\r]+", raw or "") if piece.strip()]
    if not pieces:
        raise ValidationError({"to_emails": "Enter at least one email address."})
    if len(pieces) > TEST_RECIPIENTS_MAX:
        raise ValidationError(
            {"to_emails": f"A test goes to at most {TEST_RECIPIENTS_MAX} addresses."}
        )
    addresses: list[str] = []
    errors: list[str] = []
    for piece in pieces:
        try:
            address = email_normalize(piece)
        except ValidationError as error:
            shown = piece if len(piece) <= 80 else piece[:77] + "..."
            errors.append(f"{shown!r}: {error.messages[0]}")
            continue
        if address not in addresses:
            addresses.append(address)
    if errors:
        raise ValidationError({"to_emails": errors})
    return addresses


def issue_send_tests(*, issue: Issue, to_emails: list[str]) -> tuple[list[str], list[str]]:
    """Email ``issue`` as a test to each of ``to_emails`` (from ``test_recipients_parse``);
    return ``(reached, refused)``: the addresses sent to, and for each other one why not.

    Sent at once over the mail server, not queued; nothing is recorded. The
    server refusing one address stops nothing: the others are still tried.
    """
    if len(to_emails) > TEST_RECIPIENTS_MAX:
        raise ValidationError(
            {"to_emails": f"A test goes to at most {TEST_RECIPIENTS_MAX} addresses."}
        )
    reached: list[str] = []
    refused: list[str] = []
    for address in to_emails:
        try:
            issue_send_test(issue=issue, to_email=address)
        except SuppressedTestRecipient as suppressed:
            refused.append(str(suppressed))
        except Exception as error:  # a refusal or an unreachable server, for this address
            logger.warning("Test of issue %s not sent: %s", issue.pk, type(error).__name__)
            refused.append(f"{address}: not sent ({error_for_storage(str(error))[:200]})")
        else:
            reached.append(address)
    return reached, refused


class SuppressedTestRecipient(Exception):
    """A test send's address is on the suppression list: the message names it."""


def issue_send_test(*, issue: Issue, to_email: str) -> Message:
    """Email ``issue`` to ``to_email`` (its author, usually) as a subscriber would see it.

    Sent at once, not queued: the author is waiting for it. Nothing is recorded.
    Raises ``SuppressedTestRecipient`` for an address on the suppression list for the
    issue's newsletter: a test must not mail someone who asked not to be mailed.
    """
    _test_recipient_check(issue=issue, to_email=to_email)
    profile = Profile.objects.for_email(to_email).first() or Profile(pk=0, email=to_email, name="")
    delivery = Delivery(pk=0, issue=issue, email=to_email)
    message = IssueMessages(issue, subject_prefix="[Test] ").personalise(
        delivery, profile=profile, message_id=f"<issue-{issue.pk}.test-{uuid.uuid4().hex}@test>"
    )
    message_send(message)
    return message


def _test_recipient_check(*, issue: Issue, to_email: str) -> None:
    """Raise ``SuppressedTestRecipient`` if ``to_email`` may not be mailed about the issue."""
    try:
        email = email_normalize(to_email)
    except ValidationError:
        return  # not an address the list can hold; the mail server answers for it
    if address_is_suppressed(email=email, newsletter=issue.newsletter):
        raise SuppressedTestRecipient(
            f"Not sent to {to_email}: this address is on the suppression list for "
            f"{issue.newsletter.name} (it unsubscribed, bounced or complained) and is "
            "never mailed."
        )
