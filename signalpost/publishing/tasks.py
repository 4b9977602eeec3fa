"""The tasks that send issues: any number of workers share a send's batches."""

import contextlib
import logging
import re
import smtplib
import sys
import time
from datetime import datetime

from django.db import connection, transaction
from django.tasks import task

from signalpost.conf import conf
from signalpost.durability import asynchronous_commit
from signalpost.mail.mailboxes import MailboxError
from signalpost.mail.smtp import SMTPDataRefused
from signalpost.mail.transport import AddressNotCarried, Transport
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.selectors import issue_send_halted
from signalpost.publishing.sendrate import SendRate
from signalpost.publishing.services import (
    bounces_process,
    deliveries_claim,
    deliveries_give_back_halted,
    deliveries_hold_back,
    deliveries_release,
    delivery_fail,
    delivery_hard_bounce,
    delivery_retry_later,
    error_for_storage,
    issue_finish_if_done,
    issue_prepare_chunk,
    issue_send,
    retry_at,
    retry_delay_seconds,
)
from signalpost.publishing.writes import SentMarks

logger = logging.getLogger(__name__)

# How often a batch re-reads which of its deliveries are still to send, so an
# unsubscribe during a send stops that recipient's message within about this.
PENDING_RECHECK_SECONDS = 1.0
# Refusals of a recipient that are hard bounces: these codes with a 5.1.x status.
HARD_BOUNCE_CODES = frozenset({550, 551, 553, 554})
_HARD_BOUNCE_STATUS = re.compile(r"\s*(?:<[^>]*>:?\s*)?5\.1\.\d{1,3}\b")
# How often a batch asks whether its send was paused or cancelled
# (``selectors.issue_send_halted``): a pause stops every worker within about this.
HALT_RECHECK_SECONDS = 0.25


def is_sender_refusal(error):
    """Whether the server refused the sender or the session, not this recipient.

    Every message of the batch would be refused alike, so it is the batch's
    failure, retried as such, and never a recipient's.
    """
    return isinstance(error, (smtplib.SMTPSenderRefused, SMTPDataRefused))


def is_hard_bounce(error):
    """A refusal of the recipient that means the address does not work: a hard bounce.

    ``550``/``551``/``553``/``554`` with a ``5.1.x`` enhanced status code (RFC 3463:
    bad mailbox, bad domain, no such user...). Other ``5xx`` (policy, content,
    size) fail the delivery without judging the address; ``4xx`` is never a bounce.
    """
    if not isinstance(error, smtplib.SMTPRecipientsRefused) or isinstance(error, AddressNotCarried):
        return False
    replies = list(error.recipients.values())
    return bool(replies) and all(
        code in HARD_BOUNCE_CODES and _HARD_BOUNCE_STATUS.match(_text(reply))
        for code, reply in replies
    )


def _text(reply):
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def is_permanent(error):
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return False


@task(takes_context=True)
def issue_send_batch(context, *, issue_id, failures=0):
    """Claim one batch of an issue's deliveries and send it over one SMTP connection.

    ``failures`` counts the tries before this one that failed as a whole, for
    the backoff of the next.
    """
    claimer = str(context.task_result.id)
    progress = {}
    try:
        return batch_send(issue_id=issue_id, claimer=claimer, failures=failures, progress=progress)
    except BaseException:
        # Any step may fail (the database restarting or locked, a bug), and
        # BaseException too: a second SIGTERM stops the worker with SystemExit.
        # Whatever failed, this batch's share must go back to the queue with a
        # task to send it, or the send would never finish.
        batch_give_back(
            issue_id=issue_id,
            claimer=claimer,
            suspect_id=progress.get("delivery_id"),
            failures=failures + 1,
        )
        raise


def batch_send(*, issue_id, claimer, failures, progress):
    if issue_send_halted(issue_id=issue_id):
        # A rerun after its worker died may hold claims from before: they go back
        # (or are cancelled), counted as tried since one may have been sent.
        deliveries_give_back_halted(issue_id=issue_id, claimer=claimer, tried=True)
        return {"sent": 0, "halted": True}
    issue = Issue.objects.select_related("newsletter").get(pk=issue_id)
    ids = deliveries_claim(issue_id=issue_id, claimer=claimer, limit=conf.SEND_BATCH_SIZE)
    if not ids:
        issue_finish_if_done(issue_id=issue_id)
        return {"sent": 0}
    deliveries = list(
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING)
        .select_related("profile")
        .order_by("id")
    )
    for delivery in deliveries:
        delivery.issue = issue
    with asynchronous_commit():
        outcome = deliveries_send(issue=issue, deliveries=deliveries, progress=progress)
    # Every delivery has its outcome now: none is in flight if what follows fails.
    progress.pop("delivery_id", None)
    if outcome["halted"]:
        deliveries_give_back_halted(issue_id=issue_id, claimer=claimer)
        return {key: outcome[key] for key in ("sent", "failed", "retry", "halted")}
    if outcome["sender_refused"]:
        batch_sender_refused(
            issue=issue, claimer=claimer, reason=outcome["sender_refused"], failures=failures
        )
    if outcome["retry"]:
        batch_retry(issue_id=issue_id, attempts=outcome["max_attempts"], failures=0)
    issue_finish_if_done(issue_id=issue_id)
    return {key: outcome[key] for key in ("sent", "failed", "retry", "sender_refused")}


def batch_sender_refused(*, issue, claimer, reason, failures):
    """Retry a batch whose sender the mail server refused; hold the send once retries are spent."""
    failures += 1
    hold = failures >= conf.SEND_MAX_ATTEMPTS
    with transaction.atomic():
        held = deliveries_hold_back(issue_id=issue.pk, claimer=claimer, reason=reason, hold=hold)
        if not hold:
            batch_retry(issue_id=issue.pk, attempts=failures, failures=failures)
    if hold:
        logger.error(
            "The mail server refused the sender of issue %s %s times (%s): %s deliveries are "
            "held. Fix the newsletter's sender address or the mail server's settings, then run "
            "manage.py send_issue %s %s --resume",
            issue.pk,
            failures,
            reason,
            held,
            issue.newsletter.slug,
            issue.slug,
        )
    else:
        logger.error(
            "The mail server refused the sender of issue %s (%s); its batch tries again in %ss",
            issue.pk,
            reason,
            retry_delay_seconds(failures),
        )


def error_text():
    error = sys.exc_info()[1]
    return f"the batch failed: {type(error).__name__}: {error}"


def batch_give_back(*, issue_id, claimer, suspect_id, failures):
    """After a failure outside SMTP (the database went away, a bug), requeue the batch.

    Without this its claimed deliveries would wait for a claimer that has given
    up, and the send would never finish. What was not marked sent goes back to
    the queue, the one message in flight included, and a new batch task follows
    with backoff (``deliveries_release`` says which attempts count); a batch
    that failed before claiming anything backs off by ``failures``. Should this
    fail too, the workers' periodic ``sends_recover`` (or ``send_issue
    --resume``) finds the deliveries claimed by a task that is over.
    """
    logger.exception("A batch of issue %s failed; its unsent deliveries go back", issue_id)
    try:
        connection.close_if_unusable_or_obsolete()
        with transaction.atomic():
            queued, attempts = deliveries_release(
                issue_id=issue_id, claimer=claimer, reason=error_text(), suspect_id=suspect_id
            )
            if queued:
                batch_retry(issue_id=issue_id, attempts=max(attempts, failures), failures=failures)
                return
        try:
            issue_finish_if_done(issue_id=issue_id)
        except Exception:
            # Nothing left to send, but the send is not marked finished: a batch will.
            batch_retry(issue_id=issue_id, attempts=failures, failures=failures)
            raise
    except Exception:
        logger.exception("Could not give back the batch of issue %s", issue_id)


def batch_retry(*, issue_id, attempts, failures):
    issue_send_batch.using(run_after=retry_at(attempts)).enqueue(
        issue_id=issue_id, failures=failures
    )


def deliveries_send(*, issue, deliveries, progress=None, halted=None):
    """Send each delivery; record each outcome as it happens; return the counts.

    ``progress["delivery_id"]`` names the delivery being handled, for the
    caller to know which one a failure interrupted. ``halted()`` says whether to
    stop before the next message (default: the issue's send was paused or
    cancelled, ``selectors.issue_send_halted``); an automation passes its own.
    """
    progress = {} if progress is None else progress
    if halted is None:

        def halted():
            return issue_send_halted(issue_id=issue.pk)

    messages = IssueMessages(issue, tracking=True)
    rate = SendRate(conf.SEND_RATE_PER_SECOND)
    outcome = {
        "sent": 0,
        "failed": 0,
        "retry": 0,
        "max_attempts": 0,
        "sender_refused": None,
        "halted": False,
    }
    transport = Transport(messages.letterhead)
    pending_ids = {delivery.pk for delivery in deliveries}
    rechecked_at = time.monotonic()
    halt_checked_at = float("-inf")

    def retry_later(delivery, error):
        if delivery_retry_later(delivery=delivery, error=error) is None:
            outcome["retry"] += 1
            outcome["max_attempts"] = max(outcome["max_attempts"], delivery.attempts)
        else:
            outcome["failed"] += 1

    try:
        transport.open()
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("Cannot reach the mail server for issue %s: %s", issue.pk, error)
        for delivery in deliveries:
            retry_later(delivery, error)
        return outcome
    try:
        with SentMarks() as marks:
            for index, delivery in enumerate(deliveries):
                if time.monotonic() - halt_checked_at > HALT_RECHECK_SECONDS:
                    # Paused or cancelled: stop before the next message. The
                    # caller gives back what is still claimed.
                    marks.settle()
                    if halted():
                        outcome["halted"] = True
                        return outcome
                    halt_checked_at = time.monotonic()
                progress["delivery_id"] = delivery.pk
                if time.monotonic() - rechecked_at > PENDING_RECHECK_SECONDS:
                    marks.settle()
                    pending_ids = set(
                        Delivery.objects.filter(
                            id__in=[d.pk for d in deliveries[index:]],
                            status=Delivery.Status.SENDING,
                        ).values_list("id", flat=True)
                    )
                    rechecked_at = time.monotonic()
                if delivery.pk not in pending_ids:
                    continue
                if delivery.profile is None:
                    marks.settle()
                    delivery_fail(delivery=delivery, reason="the profile was erased")
                    outcome["failed"] += 1
                    continue
                message = messages.personalise(
                    delivery, profile=delivery.profile, before_render=marks.settle
                )
                rate.acquire()
                try:
                    transport.send(message, before_data=marks.settle)
                except (smtplib.SMTPException, OSError) as error:
                    marks.settle()
                    if is_sender_refusal(error):
                        # This and the rest stay claimed for the caller to give back.
                        outcome["sender_refused"] = error_for_storage(
                            f"{type(error).__name__}: {error}"
                        )
                        return outcome
                    if is_hard_bounce(error):
                        delivery_hard_bounce(delivery=delivery, reason=str(error))
                        outcome["failed"] += 1
                        continue
                    if is_permanent(error):
                        delivery_fail(delivery=delivery, reason=str(error))
                        outcome["failed"] += 1
                        continue
                    retry_later(delivery, error)
                    if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):
                        # A temporary refusal (SMTPException is an OSError) or a dropped
                        # connection: start afresh, or give the rest back to the queue.
                        try:
                            transport.close()
                            transport.open()
                        except (smtplib.SMTPException, OSError) as reopen_error:
                            for rest in deliveries[index + 1 :]:
                                if rest.pk in pending_ids:
                                    retry_later(rest, reopen_error)
                            return outcome
                    continue
                marks.mark(delivery, message_id=message.message_id)
                outcome["sent"] += 1
    finally:
        with contextlib.suppress(Exception):
            transport.close()
    return outcome


# Above the batches: preparing runs ahead of sending, so the total is known
# early and batches never wait for deliveries to claim. Below the public forms'
# tasks (newsletters.tasks.PRIORITY): someone waiting on a page comes first.
PREPARE_PRIORITY = 5


@task(priority=PREPARE_PRIORITY)
def issue_prepare(*, issue_id, after_id):
    """Create the deliveries of a send's chunk after subscription ``after_id``, queueing
    their batches and the next chunk's task; see ``services.issue_prepare_chunk``."""
    return {"more": issue_prepare_chunk(issue_id=issue_id, after_id=after_id)}


@task
def issue_send_when_due(*, issue_id, scheduled_at):
    """Send a scheduled issue, unless it was rescheduled or unscheduled since."""
    issue = Issue.objects.filter(pk=issue_id).first()
    # Compare instants, not strings: the task carries the time as it was given
    # (any UTC offset) and the database gives it back in UTC.
    if (
        issue is None
        or issue.status != Issue.Status.SCHEDULED
        or issue.scheduled_at is None
        or issue.scheduled_at != datetime.fromisoformat(scheduled_at)
    ):
        return None
    return issue_send(issue=issue)


@task
def bounce_mailbox_read():
    """Read ``BOUNCE_MAILBOX_URL`` as ``manage.py process_bounces`` does; return the counts.

    An unreachable mailbox is logged and left for the next poll.
    """
    try:
        run = bounces_process(mailbox_url=conf.BOUNCE_MAILBOX_URL, limit=conf.BOUNCE_POLL_LIMIT)
    except MailboxError as error:
        logger.warning("The bounce mailbox cannot be read: %s", error)
        return None
    for line in run.not_understood:
        logger.warning("Not understood, left in the bounce mailbox: %s", line)
    return {"counts": run.counts, "ended": run.ended, "not_understood": len(run.not_understood)}
