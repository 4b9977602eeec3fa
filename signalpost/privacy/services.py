"""What Signalpost holds about a person: export it all, or erase it.

It reads and writes the rows of every app that keeps something about a person, so it
sits above them all (docs/architecture.md); apps it does not know of (webhooks, the task
queue) forget the person through ``profile_erased``.
"""

from datetime import date
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model, Q

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.engagement.models import Engagement
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.suppressions import suppressions_forget_address
from signalpost.publishing.models import Delivery
from signalpost.redaction import addresses_redact, text_forget
from signalpost.signals import profile_erased


def _isoformat(moment: date | None) -> str | None:
    return moment.isoformat() if moment else None


def profile_export(*, profile: Profile) -> dict[str, Any]:
    """Return everything held about ``profile`` as JSON-ready data."""

    subscriptions = Subscription.objects.filter(profile=profile).select_related("newsletter")
    activities = Activity.objects.filter(profile=profile).select_related("newsletter")
    deliveries = Delivery.objects.filter(profile=profile).select_related("issue__newsletter")
    engagements = Engagement.objects.filter(profile=profile).select_related("issue__newsletter")
    return {
        "profile": {
            "email": profile.email,
            "name": profile.name,
            "attributes": profile.attributes,
            "created_at": _isoformat(profile.created_at),
            "user": profile.user.get_username() if profile.user else None,
        },
        "subscriptions": [
            {
                "newsletter": subscription.newsletter.slug,
                "status": subscription.status,
                "source": subscription.source,
                "created_at": _isoformat(subscription.created_at),
                "requested_at": _isoformat(subscription.requested_at),
                "subscribed_at": _isoformat(subscription.subscribed_at),
                "unsubscribed_at": _isoformat(subscription.unsubscribed_at),
                "bounced_at": _isoformat(subscription.bounced_at),
                "complained_at": _isoformat(subscription.complained_at),
                "consent": {
                    "at": _isoformat(subscription.consent_at),
                    "ip": subscription.consent_ip,
                    "user_agent": subscription.consent_user_agent,
                },
            }
            for subscription in subscriptions
        ],
        "activity": [
            {
                "at": _isoformat(activity.created_at),
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
                "sent_at": _isoformat(delivery.sent_at),
            }
            for delivery in deliveries
        ],
        "engagement": [
            {
                "newsletter": engagement.issue.newsletter.slug,
                "issue": engagement.issue.subject,
                "kind": engagement.kind,
                "link": _link(engagement),
                "human": engagement.is_human,
                "at": _isoformat(engagement.occurred_at),
            }
            for engagement in engagements
        ],
    }


def _link(engagement: Engagement) -> str | None:
    links = engagement.issue.tracked_links
    index = engagement.link_index
    return links[index] if index is not None and 0 <= index < len(links) else None


@transaction.atomic
def profile_erase(*, profile: Profile) -> str:
    """Erase ``profile``: its subscriptions, activity and name go; deliveries and clicks or
    opens stay, anonymised (``Engagement.profile`` is set to null with the profile's delete).

    A suppression of the address keeps its SHA-256 and loses the address itself.
    Every other copy of the address goes in this transaction too: here the SMTP
    errors on deliveries (anyone's) and the admin history of the profile and its
    subscriptions; through ``profile_erased`` (sent with the address it had) the task
    queue, dead letters and webhook messages. Returns that address.
    """

    profile = Profile.objects.select_for_update().get(pk=profile.pk)
    email, profile_id = profile.email, profile.pk
    subscription_ids = list(
        Subscription.objects.filter(profile=profile).values_list("pk", flat=True)
    )
    _delivery_errors_redact(email=email, profile=profile)
    Delivery.objects.filter(profile=profile).update(profile=None, email="")
    _admin_history_forget(
        email=email, objects={Profile: [profile_id], Subscription: subscription_ids}
    )
    profile.delete()
    # The address stays suppressed (an erased person must not be mailed again because a
    # later import brings them back), but only as its hash.
    suppressions_forget_address(email=email)
    profile_erased.send(sender=Profile, profile_id=profile_id, user_email=email)
    return email


def _delivery_errors_redact(*, email: str, profile: Profile) -> None:
    """Take the address out of the SMTP errors stored on deliveries.

    The mail server's reply names the recipient, and a batch's error may name
    someone else's. Errors are redacted when stored (``publishing.services``); this
    finds those stored before, reading the whole table once per erasure.
    """

    mentioning = (
        Delivery.objects.filter(Q(profile=profile) | Q(last_error__icontains=email))
        .exclude(last_error="")
        .only("pk", "last_error")
    )
    for delivery in mentioning:
        redacted = addresses_redact(delivery.last_error)
        if redacted != delivery.last_error:
            Delivery.objects.filter(pk=delivery.pk).update(last_error=redacted)


ERASED_REPR = "[erased]"


def _admin_history_forget(*, email: str, objects: dict[type[Model], list[Any]]) -> None:
    """Blank what the admin history says about the erased person, keeping the entries.

    An entry's ``object_repr`` is the object's ``str()`` (the address, for a profile
    or a subscription) and its change message may name related objects. The entries
    stay, without those texts, as the record of which staff member changed what and
    when. ``objects`` maps models to the primary keys of the person's rows: their
    entries lose both texts; any other entry loses just the address.
    """

    own = Q(pk__in=[])
    for model, pks in objects.items():
        if pks:
            content_type = ContentType.objects.get_for_model(model)
            own |= Q(content_type=content_type, object_id__in=[str(pk) for pk in pks])
    LogEntry.objects.filter(own).update(object_repr=ERASED_REPR, change_message="")
    mentioning = LogEntry.objects.filter(
        Q(object_repr__icontains=email) | Q(change_message__icontains=email)
    ).only("pk", "object_repr", "change_message")
    for entry in mentioning:
        LogEntry.objects.filter(pk=entry.pk).update(
            object_repr=text_forget(entry.object_repr, text=email),
            change_message=text_forget(entry.change_message, text=email),
        )
