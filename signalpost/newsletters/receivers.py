"""Receivers of the subscription signals.

The durable ones email subscribers; each checks, when it runs, that the email still
makes sense: a subscription confirmed or ended meanwhile gets nothing.
``profiles_add_imported`` keeps ``profile.subscriptions`` in step with an import, in
the sender's transaction (the other ``profile.subscriptions`` receivers are in
accounts: they need nothing of this app's).
"""

import functools

from anymail.signals import EventType, tracking
from django.dispatch import receiver

from signalpost.durable.decorators import durable_receiver
from signalpost.newsletters import emails
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import bounce_record, complaint_record, soft_bounces_forget
from signalpost.newsletters.tasks import PRIORITY as FORM_PRIORITY
from signalpost.newsletters.writes import profile_subscriptions_add_imported
from signalpost.signals import (
    preferences_link_requested,
    subscribers_imported,
    subscription_requested,
    user_subscribed,
)

# A person who just submitted a form waits for its email: the email runs before any
# form task still waiting, so a burst of sign-ups does not hold every email back
# until the burst ends (bench/subscribe.py, end to end).
EMAIL_PRIORITY = FORM_PRIORITY + 1

# Welcome only people who asked themselves; imports and staff additions stay silent.
WELCOMED_SOURCES = {Subscription.Source.FORM, Subscription.Source.API, Subscription.Source.EMBED}


@receiver(subscribers_imported, dispatch_uid="newsletters.profiles_add_imported")
def profiles_add_imported(sender, *, newsletter, subscription_ids, **kwargs):
    """profile.subscriptions for a whole imported batch, in one statement."""
    profile_subscriptions_add_imported(newsletter=newsletter, subscription_ids=subscription_ids)


# The subscription emails take their calls in batches (durable.batches): each person's
# email is rendered on its own, and the batch goes over one SMTP connection; a call
# whose message fails is retried or dead-lettered alone.
@durable_receiver(
    subscription_requested,
    id="newsletters.email_confirmation_request",
    priority=EMAIL_PRIORITY,
    max_attempts=8,
    backoff_base=30,
    batch=True,
)
def email_confirmation_request(calls):
    """Email each pending subscription its confirmation link."""
    return _emails_send_each(
        calls, _while_status(Subscription.Status.PENDING, emails.confirmation_message)
    )


def _emails_send_each(calls, message_build):
    """Send one email per call over one connection (``emails.emails_send``).

    ``message_build(arguments, idempotency_key)`` returns a call's ``Message``, or
    ``None`` when its email no longer makes sense. Returns the failed calls' errors.
    """
    return emails.emails_send(
        {
            call.idempotency_key: functools.partial(
                message_build, call.arguments, call.idempotency_key
            )
            for call in calls
        }
    )


def _while_status(status, subscription_message):
    """A message builder for ``_emails_send_each``: ``subscription_message`` for the call's
    subscription while it has ``status`` (confirmed or ended meanwhile: nothing)."""

    def message_build(arguments, idempotency_key):
        subscription = arguments["subscription"]
        if subscription.status != status:
            return None
        return subscription_message(subscription=subscription, idempotency_key=idempotency_key)

    return message_build


def asked_themselves(*, source, newsletter, **kwargs):
    """Welcome people who asked themselves, unless the newsletter's welcome automation
    (``signalpost.automations``, reached by its relation name) sends the welcome."""
    if source not in WELCOMED_SOURCES:
        return False
    return not newsletter.automations.filter(is_welcome=True, status__in=WELCOMING).exists()


# The states of a welcome automation in which it, not this receiver, welcomes people.
WELCOMING = ("active", "paused")


@durable_receiver(
    user_subscribed,
    id="newsletters.email_welcome",
    priority=EMAIL_PRIORITY,
    max_attempts=8,
    backoff_base=30,
    only_if=asked_themselves,
    batch=True,
)
def email_welcome(calls):
    """Welcome each newly active subscription."""
    return _emails_send_each(
        calls, _while_status(Subscription.Status.ACTIVE, emails.welcome_message)
    )


@durable_receiver(
    preferences_link_requested,
    id="newsletters.email_preferences_link",
    priority=EMAIL_PRIORITY,
    max_attempts=5,
    backoff_base=30,
    batch=True,
)
def email_preferences_link(calls):
    """Email each profile the link to their preference center."""
    return _emails_send_each(calls, _preferences_link)


def _preferences_link(arguments, idempotency_key):
    return emails.preferences_link_message(
        profile=arguments["profile"], idempotency_key=idempotency_key
    )


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
