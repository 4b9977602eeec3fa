"""Receivers of engagement: record the inbox on the heartbeat, forget people who leave."""

import logging
import time

from django.dispatch import receiver

from signalpost.conf import conf
from signalpost.durable.signals import worker_beat
from signalpost.engagement.selectors import profiles_engaged_lately
from signalpost.engagement.services import engagement_forget, hits_record
from signalpost.newsletters.segments import engaged_profiles_provide
from signalpost.signals import bounce_received, complaint_received, user_unsubscribed

logger = logging.getLogger(__name__)


@receiver(worker_beat, dispatch_uid="engagement.hits_record_settled")
def hits_record_settled(sender, *, worker_id, **kwargs):
    """Record the settled clicks and opens, batch after batch, for at most a time budget.

    Several workers share the inbox (each batch is claimed with SKIP LOCKED); what is
    left when the budget runs out waits for the next beat, safe in its table.
    """
    deadline = time.monotonic() + conf.ENGAGEMENT_BEAT_BUDGET_SECONDS
    total = 0
    while time.monotonic() < deadline:
        recorded = hits_record()
        total += recorded
        if not recorded:
            break
    if total:
        logger.info("Recorded %d clicks and opens", total)


@receiver(user_unsubscribed, dispatch_uid="engagement.forget_unsubscribed")
def engagement_forget_unsubscribed(sender, *, profile, newsletter, **kwargs):
    """Per-person engagement is kept only while the person is subscribed."""
    engagement_forget(profile_id=profile.pk, newsletter_id=newsletter.pk)


@receiver(bounce_received, dispatch_uid="engagement.forget_bounced")
@receiver(complaint_received, dispatch_uid="engagement.forget_complained")
def engagement_forget_ended(sender, *, profile, subscription, **kwargs):
    """A bounce or a complaint ends the subscription: its engagement becomes anonymous."""
    if (
        profile is not None
        and subscription is not None
        and (subscription.status != subscription.Status.ACTIVE)
    ):
        engagement_forget(profile_id=profile.pk, newsletter_id=subscription.newsletter_id)


# Segments' engagement conditions ("clicked any of the last 3 issues") live in the
# newsletters layer, below this app; it hands them its selector here, when Django is ready.
engaged_profiles_provide(profiles_engaged_lately)
