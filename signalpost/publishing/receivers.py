"""Receivers that keep sends in step with subscriptions, in the sender's transaction."""

from django.dispatch import receiver

from signalpost.publishing.services import deliveries_skip_for
from signalpost.signals import user_unsubscribed


@receiver(user_unsubscribed, dispatch_uid="publishing.deliveries_skip")
def deliveries_skip(sender, *, profile, newsletter, **kwargs):
    """An unsubscribe during a send stops the deliveries not yet sent to that person."""
    deliveries_skip_for(profile=profile, newsletter=newsletter)
