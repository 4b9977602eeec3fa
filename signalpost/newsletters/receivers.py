"""Receivers of the subscription signals.

The durable ones email subscribers; each checks, when it runs, that the email still
makes sense: a subscription confirmed or ended meanwhile gets nothing.
``profiles_add_imported`` keeps ``profile.subscriptions`` in step with an import, in
the sender's transaction (the other ``profile.subscriptions`` receivers are in
accounts: they need nothing of this app's).
"""

from anymail.signals import EventType, tracking
from django.dispatch import receiver

from signalpost.durable.decorators import durable
from signalpost.newsletters import emails
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import bounce_record, complaint_record, soft_bounces_forget
from signalpost.newsletters.writes import profile_subscriptions_add_imported
from signalpost.signals import (
    preferences_link_requested,
    subscribers_imported,
    subscription_requested,
    user_subscribed,
)

# Welcome only people who asked themselves; imports and staff additions stay silent.
WELCOMED_SOURCES = {Subscription.Source.FORM, Subscription.Source.API}


@receiver(subscribers_imported, dispatch_uid="newsletters.profiles_add_imported")
def profiles_add_imported(sender, *, newsletter, subscription_ids, **kwargs):
    """profile.subscriptions for a whole imported batch, in one statement."""
    profile_subscriptions_add_imported(newsletter=newsletter, subscription_ids=subscription_ids)


@receiver(subscription_requested, dispatch_uid="newsletters.email_confirmation_request")
@durable(max_attempts=8, backoff_base=30)
def email_confirmation_request(sender, *, subscription, idempotency_key, **kwargs):
    if subscription.status == Subscription.Status.PENDING:
        emails.email_confirmation_send(subscription=subscription, idempotency_key=idempotency_key)


def asked_themselves(*, source, **kwargs):
    return source in WELCOMED_SOURCES


@receiver(user_subscribed, dispatch_uid="newsletters.email_welcome")
@durable(max_attempts=8, backoff_base=30, only_if=asked_themselves)
def email_welcome(sender, *, subscription, idempotency_key, **kwargs):
    if subscription.status == Subscription.Status.ACTIVE:
        emails.email_welcome_send(subscription=subscription, idempotency_key=idempotency_key)


@receiver(preferences_link_requested, dispatch_uid="newsletters.email_preferences_link")
@durable(max_attempts=5, backoff_base=30)
def email_preferences_link(sender, *, profile, idempotency_key, **kwargs):
    emails.email_preferences_link_send(profile=profile, idempotency_key=idempotency_key)


def bounce_is_permanent(event):
    """Hard unless the provider says it is temporary (a deferral, a soft bounce, a 4xx)."""
    if event.event_type == EventType.DEFERRED:
        return False
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    esp_type = str(esp_event.get("Type", "")).lower()
    if "soft" in esp_type or "transient" in esp_type:
        return False
    return not (event.mta_response or "").lstrip().startswith("4")


@receiver(tracking, dispatch_uid="newsletters.delivery_problem_record")
def delivery_problem_record(sender, *, event, esp_name, **kwargs):
    """Turn a provider's bounce and complaint webhooks (through django-anymail) into ours."""
    if not event.recipient:
        return
    description = event.description or event.mta_response or f"reported by {esp_name}"
    if event.event_type == EventType.COMPLAINED:
        complaint_record(email=event.recipient, description=description)
    elif event.event_type == EventType.DELIVERED:
        soft_bounces_forget(email=event.recipient)
    elif event.event_type == EventType.BOUNCED or (
        event.event_type == EventType.REJECTED and event.reject_reason in {"bounced", "invalid"}
    ):
        # A DEFERRED event (greylisting, a slow server) is a delay, not a bounce: ignored.
        bounce_record(
            email=event.recipient, permanent=bounce_is_permanent(event), description=description
        )
