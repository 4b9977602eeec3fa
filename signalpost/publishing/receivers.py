"""Receivers that keep sends in step with subscriptions, in the sender's transaction."""

from django.dispatch import receiver

from signalpost.conf import conf
from signalpost.durable.maintenance import chore_due
from signalpost.durable.services import task_enqueue
from signalpost.durable.signals import worker_beat
from signalpost.publishing.services import deliveries_skip_for, sends_recover
from signalpost.publishing.tasks import bounce_mailbox_read
from signalpost.signals import bounce_received, complaint_received, user_unsubscribed


@receiver(user_unsubscribed, dispatch_uid="publishing.deliveries_skip")
def deliveries_skip(sender, *, profile, newsletter, **kwargs):
    """An unsubscribe during a send stops the deliveries not yet sent to that person."""
    deliveries_skip_for(profile=profile, newsletter=newsletter)


@receiver(bounce_received, dispatch_uid="publishing.deliveries_skip_bounced")
@receiver(complaint_received, dispatch_uid="publishing.deliveries_skip_complained")
def deliveries_skip_undeliverable(sender, *, profile, subscription, **kwargs):
    """No more mail to an address that bounced or complained, mid-send included."""
    deliveries_skip_for(profile=profile, newsletter=subscription.newsletter)


@receiver(worker_beat, dispatch_uid="publishing.sends_recover")
def sends_recover_stranded(sender, *, worker_id, **kwargs):
    """A send whose batch failed and could not even give its deliveries back still finishes."""
    sends_recover()


@receiver(worker_beat, dispatch_uid="publishing.bounce_mailbox_poll")
def bounce_mailbox_poll(sender, *, worker_id, **kwargs):
    """With ``BOUNCE_MAILBOX_URL`` set, queue a read of the bounce mailbox every
    ``BOUNCE_POLL_SECONDS`` (one worker of them all with a shared cache)."""
    if conf.BOUNCE_MAILBOX_URL and chore_due("bounce_mailbox_read", every=conf.BOUNCE_POLL_SECONDS):
        task_enqueue(bounce_mailbox_read)
