"""Durable receivers that email subscribers. Each checks, when it runs, that the email
still makes sense: a subscription confirmed or ended meanwhile gets nothing."""

from django.dispatch import receiver

from signalpost.durable.decorators import durable
from signalpost.newsletters import emails
from signalpost.newsletters.models import Subscription
from signalpost.signals import preferences_link_requested, subscription_requested, user_subscribed

# Welcome only people who asked themselves; imports and staff additions stay silent.
WELCOMED_SOURCES = {Subscription.Source.FORM, Subscription.Source.API}


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
