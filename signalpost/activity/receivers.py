"""Receivers that write one activity row per event, in the sender's transaction."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.activity.services import activity_record
from signalpost.activity.writes import activities_insert_imported
from signalpost.signals import (
    delivery_failed,
    email_opened,
    link_clicked,
    subscribers_imported,
    subscription_requested,
    user_subscribed,
    user_unsubscribed,
)


@receiver(subscription_requested, dispatch_uid="activity.record_subscription_requested")
def activity_record_subscription_requested(sender, *, profile, newsletter, source, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.SUBSCRIPTION_REQUESTED,
        newsletter=newsletter,
        detail={"source": source},
    )


@receiver(user_subscribed, dispatch_uid="activity.record_subscribed")
def activity_record_subscribed(sender, *, profile, newsletter, source, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.SUBSCRIBED,
        newsletter=newsletter,
        detail={"source": source},
    )


@receiver(user_unsubscribed, dispatch_uid="activity.record_unsubscribed")
def activity_record_unsubscribed(sender, *, profile, newsletter, reason, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.UNSUBSCRIBED,
        newsletter=newsletter,
        detail={"reason": reason},
    )


@receiver(user_logged_in, dispatch_uid="activity.record_user_logged_in")
def activity_record_user_logged_in(sender, *, user, **kwargs):
    profile = Profile.objects.filter(user=user).first()
    if profile is not None:
        activity_record(profile=profile, event=Activity.Event.USER_LOGGED_IN)


@receiver(delivery_failed, dispatch_uid="activity.record_delivery_failed")
def activity_record_delivery_failed(sender, *, profile, issue, reason, **kwargs):
    if profile is not None:
        activity_record(
            profile=profile,
            event=Activity.Event.DELIVERY_FAILED,
            newsletter=issue.newsletter,
            detail={"issue": issue.pk, "reason": reason[:500]},
        )


@receiver(subscribers_imported, dispatch_uid="activity.record_imported")
def activity_record_imported(sender, *, newsletter, subscription_ids, source, **kwargs):
    """One activity row per imported subscription, in one statement."""
    activities_insert_imported(
        newsletter=newsletter, subscription_ids=subscription_ids, source=source
    )


@receiver(link_clicked, dispatch_uid="activity.record_link_clicked")
def activity_record_link_clicked(sender, *, issue, profile, url, is_human, **kwargs):
    """A person's click (scanners' are not theirs) on a newsletter that keeps who clicked."""
    if profile is not None and is_human:
        activity_record(
            profile=profile,
            event=Activity.Event.LINK_CLICKED,
            newsletter=issue.newsletter,
            detail={"issue": issue.pk, "url": url[:500]},
        )


@receiver(email_opened, dispatch_uid="activity.record_email_opened")
def activity_record_email_opened(sender, *, issue, profile, is_human, **kwargs):
    """A person's open (image proxies' are not theirs), where opens are kept per person."""
    if profile is not None and is_human:
        activity_record(
            profile=profile,
            event=Activity.Event.EMAIL_OPENED,
            newsletter=issue.newsletter,
            detail={"issue": issue.pk},
        )
