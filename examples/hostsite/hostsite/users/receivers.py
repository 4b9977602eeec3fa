"""The tutorial's receivers, in the host's own code: Signalpost's signals carry
``user_email`` (docs/signals.md)."""

import logging

from django.dispatch import receiver

from signalpost.signals import user_subscribed, user_unsubscribed

logger = logging.getLogger("hostsite")


@receiver(user_subscribed, dispatch_uid="hostsite.member_subscribed_log")
def member_subscribed_log(sender, *, user_email, newsletter, profile, **kwargs):
    member = profile.user.email if profile.user else "nobody"
    logger.info("user_subscribed %s to %s (member %s)", user_email, newsletter.slug, member)


@receiver(user_unsubscribed, dispatch_uid="hostsite.member_unsubscribed_log")
def member_unsubscribed_log(sender, *, user_email, newsletter, **kwargs):
    logger.info("user_unsubscribed %s from %s", user_email, newsletter.slug)
