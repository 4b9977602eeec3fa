"""One durable receiver per event: it queues the event for each endpoint that wants it.

Sending the signal records the durable call in the sender's transaction; in
the worker the receiver builds the event's JSON and queues one message per
endpoint, each retried on its own. Nothing is queued while no endpoint exists.
The erase event is the exception: it is queued in the erase's transaction.
"""

import functools
import logging
import uuid

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from signalpost import signals
from signalpost.conf import conf
from signalpost.durable.decorators import durable_receiver
from signalpost.durable.maintenance import retention_cutoff
from signalpost.durable.signals import worker_beat
from signalpost.signals import profile_erased
from signalpost.webhooks.events import ERASED_EVENT, EVENTS, erased_data
from signalpost.webhooks.models import WebhookEndpoint
from signalpost.webhooks.selectors import endpoints_active_exist, endpoints_changed
from signalpost.webhooks.services import messages_create, messages_forget, messages_prune

logger = logging.getLogger(__name__)


def endpoints_exist(**kwargs):
    return endpoints_active_exist()


@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="webhooks.endpoints_changed_saved")
@receiver(post_delete, sender=WebhookEndpoint, dispatch_uid="webhooks.endpoints_changed_deleted")
def endpoints_cache_invalidate(sender, *, using, **kwargs):
    """Make every process ask the database again whether endpoints exist.

    At once, so this transaction sees its own change, and again after commit:
    a process that asked in between read the database without the change.
    """
    endpoints_changed()
    transaction.on_commit(endpoints_changed, using=using, robust=True)


def _messages_queue(event, idempotency_key, arguments):
    """Queue ``event`` built from the signal's ``arguments`` for every endpoint that wants it."""
    _signal, build = EVENTS[event]
    messages_create(event=event, event_id=idempotency_key, payload=build(**arguments))


# One durable receiver per event, written out so that the id a queued call carries
# ("webhooks.<event>") is found by grep. tests/test_webhooks_and_bounces.py checks
# that every event of EVENTS but the erase has its receiver here, on its signal.
webhook_receiver = functools.partial(
    durable_receiver,
    max_attempts=5,
    backoff_base=10,
    only_if=endpoints_exist,
    only_if_per_batch=True,
)


@webhook_receiver(signals.subscription_requested, id="webhooks.subscriber.requested")
def webhooks_subscriber_requested(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.requested", idempotency_key, arguments)


@webhook_receiver(signals.user_subscribed, id="webhooks.subscriber.subscribed")
def webhooks_subscriber_subscribed(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.subscribed", idempotency_key, arguments)


@webhook_receiver(signals.user_unsubscribed, id="webhooks.subscriber.unsubscribed")
def webhooks_subscriber_unsubscribed(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.unsubscribed", idempotency_key, arguments)


@webhook_receiver(signals.bounce_received, id="webhooks.subscriber.bounced")
def webhooks_subscriber_bounced(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.bounced", idempotency_key, arguments)


@webhook_receiver(signals.complaint_received, id="webhooks.subscriber.complained")
def webhooks_subscriber_complained(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.complained", idempotency_key, arguments)


@webhook_receiver(signals.address_suppressed, id="webhooks.subscriber.suppressed")
def webhooks_subscriber_suppressed(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.suppressed", idempotency_key, arguments)


@webhook_receiver(signals.suppression_lifted, id="webhooks.subscriber.suppression_lifted")
def webhooks_subscriber_suppression_lifted(
    sender, *, signal, idempotency_key, attempt, **arguments
):
    _messages_queue("subscriber.suppression_lifted", idempotency_key, arguments)


@webhook_receiver(signals.profile_tagged, id="webhooks.subscriber.tagged")
def webhooks_subscriber_tagged(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.tagged", idempotency_key, arguments)


@webhook_receiver(signals.profile_untagged, id="webhooks.subscriber.untagged")
def webhooks_subscriber_untagged(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("subscriber.untagged", idempotency_key, arguments)


@webhook_receiver(signals.profile_attributes_changed, id="webhooks.subscriber.attributes_changed")
def webhooks_subscriber_attributes_changed(
    sender, *, signal, idempotency_key, attempt, **arguments
):
    _messages_queue("subscriber.attributes_changed", idempotency_key, arguments)


@webhook_receiver(signals.automation_step_webhook, id="webhooks.automation.step")
def webhooks_automation_step(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("automation.step", idempotency_key, arguments)


@webhook_receiver(signals.issue_sending_started, id="webhooks.issue.sending")
def webhooks_issue_sending(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.sending", idempotency_key, arguments)


@webhook_receiver(signals.issue_sent, id="webhooks.issue.sent")
def webhooks_issue_sent(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.sent", idempotency_key, arguments)


@webhook_receiver(signals.delivery_failed, id="webhooks.delivery.failed")
def webhooks_delivery_failed(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("delivery.failed", idempotency_key, arguments)


@webhook_receiver(signals.issue_paused, id="webhooks.issue.paused")
def webhooks_issue_paused(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.paused", idempotency_key, arguments)


@webhook_receiver(signals.issue_resumed, id="webhooks.issue.resumed")
def webhooks_issue_resumed(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.resumed", idempotency_key, arguments)


@webhook_receiver(signals.issue_cancelled, id="webhooks.issue.cancelled")
def webhooks_issue_cancelled(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.cancelled", idempotency_key, arguments)


def engagement_wanted(*, is_human, **kwargs):
    """Machine clicks and opens only with WEBHOOKS_MACHINE_ENGAGEMENT, and only to endpoints."""
    wanted = is_human or conf.WEBHOOKS_MACHINE_ENGAGEMENT
    return wanted and endpoints_active_exist()


engagement_receiver = functools.partial(
    durable_receiver, max_attempts=5, backoff_base=10, only_if=engagement_wanted
)


@engagement_receiver(signals.link_clicked, id="webhooks.issue.clicked")
def webhooks_issue_clicked(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.clicked", idempotency_key, arguments)


@engagement_receiver(signals.email_opened, id="webhooks.issue.opened")
def webhooks_issue_opened(sender, *, signal, idempotency_key, attempt, **arguments):
    _messages_queue("issue.opened", idempotency_key, arguments)


@receiver(profile_erased, dispatch_uid="webhooks.messages_forget_profile")
def webhooks_messages_forget_profile(sender, *, user_email, **kwargs):
    """Events already queued or sent about the person carry their address and name."""
    messages_forget(email=user_email)


@receiver(profile_erased, dispatch_uid=f"webhooks.{ERASED_EVENT}")
def webhooks_subscriber_erased(sender, *, profile_id, user_email, **kwargs):
    """Queue the erase event now, not through a durable call.

    A durable call's task row would keep the address after it ran, and the whole
    point is to forget it; here the messages are its only copies, each dropping it
    when delivered or given up. An erasure is rare, so the erase's transaction can
    afford the few inserts.
    """
    payload = erased_data(profile_id=profile_id, user_email=user_email)
    messages_create(event=ERASED_EVENT, event_id=uuid.uuid4().hex, payload=payload)


@receiver(worker_beat, dispatch_uid="webhooks.messages_prune_old")
def messages_prune_old(sender, *, worker_id, **kwargs):
    """Delivered and given-up messages older than ``WEBHOOK_MESSAGES_RETENTION_DAYS`` go,
    with their attempts, once per maintenance interval (pending ones stay)."""
    days = conf.WEBHOOK_MESSAGES_RETENTION_DAYS
    cutoff = retention_cutoff("webhook_messages_prune", days=days)
    if cutoff is None:
        return
    pruned = messages_prune(older_than=cutoff)
    logger.info("Pruned %d webhook messages older than %d days", pruned, days)
