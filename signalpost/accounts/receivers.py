"""Receivers that keep profiles in step with users and subscriptions.

All of them write only to this database and run inside the sender's transaction.
"""

import logging

from django.conf import settings
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from signalpost.accounts.services import profile_link_user
from signalpost.durable.services import durable_calls_forget
from signalpost.signals import (
    bounce_received,
    complaint_received,
    profile_erased,
    user_subscribed,
    user_unsubscribed,
)

logger = logging.getLogger(__name__)


@receiver(user_subscribed, dispatch_uid="accounts.profile_add_subscription")
def profile_add_subscription(sender, *, profile, newsletter, **kwargs):
    """The tutorial's ``user.profile.subscriptions.add(...)``, on every activation."""
    profile.subscriptions.add(newsletter)


@receiver(user_unsubscribed, dispatch_uid="accounts.profile_remove_subscription")
def profile_remove_subscription(sender, *, profile, newsletter, **kwargs):
    """The tutorial's ``user.profile.subscriptions.remove(...)``."""
    profile.subscriptions.remove(newsletter)


@receiver(bounce_received, dispatch_uid="accounts.profile_remove_bounced")
@receiver(complaint_received, dispatch_uid="accounts.profile_remove_complained")
def profile_remove_undeliverable(sender, *, profile, subscription, **kwargs):
    """A bounced or complaining address is no longer subscribed."""
    profile.subscriptions.remove(subscription.newsletter)


@receiver(profile_erased, dispatch_uid="accounts.durable_calls_forget_profile")
def durable_calls_forget_profile(sender, *, profile_id, user_email, **kwargs):
    """Task arguments and dead letters keep the signal's user_email and the profile's
    id: the task queue forgets both."""
    durable_calls_forget(
        texts=[user_email],
        references={"profile": profile_id},
        # A waiting call of this very signal carries the address by design, so that its
        # receiver can forget the person elsewhere; webhooks' own erase event is queued
        # in the erase's transaction for that reason.
        waiting_calls_kept=[profile_erased],
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.profile_link_user")
def profile_create_or_link_for_user(sender, *, instance, raw, update_fields, **kwargs):
    """Give each user with an email address a profile, linking one that already exists."""
    # Fixtures load raw rows; saves that leave the email alone (last_login on
    # every login) cannot change which profile is the user's.
    if raw or (update_fields is not None and "email" not in update_fields):
        return
    profile_link_user(user=instance)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_creation_log")
def user_creation_log(sender, *, instance, raw, **kwargs):
    """Log a user's creation, as the tutorial's ``user_created`` meant to.

    The tutorial's receiver fired on every save; this one only on the insert.
    """
    if instance._state.adding and not raw:
        logger.info("Creating user %s", instance.get_username())
