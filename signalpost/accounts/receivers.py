"""Receivers that keep profiles in step with users and subscriptions.

All of them write only to this database and run inside the sender's transaction.
"""

import logging

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from signalpost.accounts.services import profile_link_user
from signalpost.durable.services import durable_calls_forget
from signalpost.signals import (
    bounce_received,
    complaint_received,
    profile_erased,
    subscribers_imported,
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


@receiver(subscribers_imported, dispatch_uid="accounts.profiles_add_imported")
def profiles_add_imported(sender, *, newsletter, subscription_ids, **kwargs):
    """profile.subscriptions for a whole imported batch, in one statement."""
    from signalpost.accounts.models import Profile
    from signalpost.newsletters.models import Subscription
    from signalpost.newsletters.selectors import subscriptions_batch_cte

    field = Profile.subscriptions.field
    through = Profile.subscriptions.through
    batch = subscriptions_batch_cte(subscription_ids=subscription_ids)
    if batch is None:
        profile_ids = Subscription.objects.filter(
            id__in=subscription_ids, status=Subscription.Status.ACTIVE
        ).values_list("profile_id", flat=True)
        through.objects.bulk_create(
            [
                through(profile_id=profile_id, newsletter_id=newsletter.pk)
                for profile_id in profile_ids
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        return
    # Set-based: an instance per row, then bulk_create compiling it, cost more than the
    # import's own writes (bench/README.md, # Import).
    batch_sql, batch_params = batch
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"{batch_sql}INSERT INTO {quote(through._meta.db_table)} "
            f"({quote(field.m2m_column_name())}, {quote(field.m2m_reverse_name())}) "
            "SELECT profile_id, %s FROM batch WHERE status = %s ON CONFLICT DO NOTHING",
            [*batch_params, newsletter.pk, Subscription.Status.ACTIVE.value],
        )


@receiver(bounce_received, dispatch_uid="accounts.profile_remove_bounced")
@receiver(complaint_received, dispatch_uid="accounts.profile_remove_complained")
def profile_remove_undeliverable(sender, *, profile, subscription, **kwargs):
    """A bounced or complaining address is no longer subscribed."""
    profile.subscriptions.remove(subscription.newsletter)


@receiver(profile_erased, dispatch_uid="accounts.durable_calls_forget_profile")
def durable_calls_forget_profile(sender, *, profile_id, user_email, **kwargs):
    """Task arguments and dead letters keep the signal's user_email and the profile's
    id: the task queue forgets both."""
    durable_calls_forget(texts=[user_email], references={"profile": profile_id})


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
