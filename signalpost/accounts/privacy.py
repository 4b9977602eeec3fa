"""What Signalpost holds about a person: export it all, or erase it."""

import json

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.db.models.lookups import IContains

from signalpost.accounts.models import Profile
from signalpost.signals import profile_erased


def isoformat(moment):
    return moment.isoformat() if moment else None


def profile_export(*, profile):
    """Return everything held about ``profile`` as JSON-ready data."""
    from signalpost.activity.models import Activity
    from signalpost.newsletters.models import Subscription
    from signalpost.publishing.models import Delivery

    subscriptions = Subscription.objects.filter(profile=profile).select_related("newsletter")
    activities = Activity.objects.filter(profile=profile).select_related("newsletter")
    deliveries = Delivery.objects.filter(profile=profile).select_related("issue__newsletter")
    return {
        "profile": {
            "email": profile.email,
            "name": profile.name,
            "attributes": profile.attributes,
            "created_at": isoformat(profile.created_at),
            "user": profile.user.get_username() if profile.user else None,
        },
        "subscriptions": [
            {
                "newsletter": subscription.newsletter.slug,
                "status": subscription.status,
                "source": subscription.source,
                "created_at": isoformat(subscription.created_at),
                "requested_at": isoformat(subscription.requested_at),
                "subscribed_at": isoformat(subscription.subscribed_at),
                "unsubscribed_at": isoformat(subscription.unsubscribed_at),
                "bounced_at": isoformat(subscription.bounced_at),
                "complained_at": isoformat(subscription.complained_at),
                "consent": {
                    "at": isoformat(subscription.consent_at),
                    "ip": subscription.consent_ip,
                    "user_agent": subscription.consent_user_agent,
                },
            }
            for subscription in subscriptions
        ],
        "activity": [
            {
                "at": isoformat(activity.created_at),
                "event": activity.event,
                "newsletter": activity.newsletter.slug if activity.newsletter else None,
                "detail": activity.detail,
            }
            for activity in activities
        ],
        "deliveries": [
            {
                "newsletter": delivery.issue.newsletter.slug,
                "issue": delivery.issue.subject,
                "status": delivery.status,
                "sent_at": isoformat(delivery.sent_at),
            }
            for delivery in deliveries
        ],
    }


def json_mentions(field, *, email):
    """Return a condition matching rows whose JSON column ``field`` holds ``email`` as a
    string value anywhere in it, ignoring case.

    The column is compared as text, so the query reads the whole table: fine for an
    erasure, which is rare, and not for anything that runs per request. The quoted
    JSON string is searched, not the bare address, so that erasing an@example.com
    leaves jan@example.com's rows alone. It is searched as ``json.dumps`` writes it
    (how SQLite stores it, non-ASCII as ``\\u`` escapes) and with the characters
    themselves (how PostgreSQL prints ``jsonb`` as text).
    """
    text = Cast(field, TextField())
    first, *others = dict.fromkeys([json.dumps(email), json.dumps(email, ensure_ascii=False)])
    condition = IContains(text, first)
    for spelling in others:
        condition |= IContains(text, spelling)
    return condition


@transaction.atomic
def profile_erase(*, profile):
    """Erase ``profile``: its subscriptions, activity and name go; deliveries stay, anonymised.

    Sends ``profile_erased`` with the address it had, so receivers can forget
    it elsewhere (the task queue, dead letters and webhook messages do, in this
    transaction). Returns that address.
    """
    from signalpost.publishing.models import Delivery

    profile = Profile.objects.select_for_update().get(pk=profile.pk)
    email, profile_id = profile.email, profile.pk
    Delivery.objects.filter(profile=profile).update(profile=None, email="")
    profile.delete()
    profile_erased.send(sender=Profile, profile_id=profile_id, user_email=email)
    return email
