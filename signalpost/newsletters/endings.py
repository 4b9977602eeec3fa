"""Ending one live subscription: its status change, the save and ``user_unsubscribed``.

The one place a subscription is ended and the catalogue told: a person leaving
(``services.subscription_end``) and a new suppression covering the address
(``suppressions.suppressions_add``) both end subscriptions through it. It runs in
the caller's transaction, which holds the subscription's row lock.
"""

from datetime import datetime

from signalpost.newsletters.models import Subscription
from signalpost.signals import user_unsubscribed

REASON_MAX_LENGTH = 200


def subscription_ended_save(
    *, subscription: Subscription, status: str, timestamp_field: str, reason: str, now: datetime
) -> None:
    """Give ``subscription`` ``status``, ``timestamp_field`` = ``now`` and ``reason`` (cut to
    ``REASON_MAX_LENGTH``), save those fields and send ``user_unsubscribed``.

    ``subscription.profile`` and ``subscription.newsletter`` are read (load them with it).
    """
    subscription.status = status
    setattr(subscription, timestamp_field, now)
    subscription.unsubscribe_reason = reason[:REASON_MAX_LENGTH]
    subscription.save(update_fields=["status", timestamp_field, "unsubscribe_reason"])
    user_unsubscribed.send(
        sender=Subscription,
        profile=subscription.profile,
        newsletter=subscription.newsletter,
        subscription=subscription,
        user_email=subscription.profile.email,
        reason=subscription.unsubscribe_reason,
    )
