"""The events integrators receive, and the JSON each carries."""

from signalpost import signals
from signalpost.accounts.models import Profile


def subscription_data(*, profile, newsletter, subscription, user_email, **kwargs):
    return {
        "email": user_email,
        "name": profile.name,
        "newsletter": newsletter.slug,
        "status": subscription.status,
        "source": subscription.source,
    }


def bounce_data(*, profile, subscription, user_email, **kwargs):
    return {
        "email": user_email,
        "newsletter": subscription.newsletter.slug if subscription else None,
        "status": subscription.status if subscription else None,
    }


def issue_data(*, issue, newsletter, **kwargs):
    data = {"issue": issue.pk, "subject": issue.subject, "newsletter": newsletter.slug}
    data.update({key: value for key, value in kwargs.items() if key.endswith("_count")})
    return data


def delivery_data(*, delivery, issue, user_email, reason, **kwargs):
    return {
        "issue": issue.pk,
        "newsletter": issue.newsletter.slug,
        "email": user_email,
        "reason": reason,
    }


def engagement_data(*, delivery, issue, profile, is_human, url=None, **kwargs):
    data = {
        "issue": issue.pk,
        "newsletter": issue.newsletter.slug,
        # None where the newsletter keeps counts only, or the person has left it.
        "email": profile.email if profile is not None else None,
        "human": is_human,
    }
    if url is not None:
        data["url"] = url
    return data


def erased_data(*, profile_id, user_email, **kwargs):
    # The address is what integrators know the person by: without it they cannot
    # erase their copy. The message drops it once delivered or given up.
    return {"email": user_email}


def suppressed_data(*, emails, newsletter, reason, source, **kwargs):
    return {
        "emails": list(emails),
        "newsletter": newsletter.slug if newsletter else None,
        "reason": reason,
        "source": source,
    }


def suppression_lifted_data(*, user_email, newsletter, subscription, **kwargs):
    return {"email": user_email, "newsletter": newsletter.slug, "status": subscription.status}


def tagged_data(*, tag, profile_ids, source, **kwargs):
    # The addresses as they are when the event is built (an erased profile is left out).
    profiles = Profile.objects.filter(pk__in=profile_ids).order_by("pk")
    emails = profiles.values_list("email", flat=True)
    return {"tag": tag, "emails": list(emails), "source": source}


def attributes_changed_data(*, profile, user_email, changed, source, **kwargs):
    return {"email": user_email, "changed": changed, "source": source}


def automation_step_data(
    *, automation_id, automation_name, newsletter, profile, user_email, event, **kwargs
):
    return {
        "automation": automation_id,
        "name": automation_name,
        "newsletter": newsletter.slug,
        "email": user_email,
        "event": event,
    }


ERASED_EVENT = "subscriber.erased"

# The keys of an event's data that name a person: an endpoint's answer that echoes
# them is stored without them (services._excerpt).
PERSONAL_FIELDS = ("email", "name")


# event name: (signal, payload builder)
EVENTS = {
    "subscriber.requested": (signals.subscription_requested, subscription_data),
    "subscriber.subscribed": (signals.user_subscribed, subscription_data),
    "subscriber.unsubscribed": (signals.user_unsubscribed, subscription_data),
    "subscriber.bounced": (signals.bounce_received, bounce_data),
    "subscriber.complained": (signals.complaint_received, bounce_data),
    "subscriber.suppressed": (signals.address_suppressed, suppressed_data),
    "subscriber.suppression_lifted": (signals.suppression_lifted, suppression_lifted_data),
    "subscriber.tagged": (signals.profile_tagged, tagged_data),
    "subscriber.untagged": (signals.profile_untagged, tagged_data),
    "subscriber.attributes_changed": (signals.profile_attributes_changed, attributes_changed_data),
    ERASED_EVENT: (signals.profile_erased, erased_data),
    "issue.sending": (signals.issue_sending_started, issue_data),
    "issue.sent": (signals.issue_sent, issue_data),
    "issue.paused": (signals.issue_paused, issue_data),
    "issue.resumed": (signals.issue_resumed, issue_data),
    "issue.cancelled": (signals.issue_cancelled, issue_data),
    "delivery.failed": (signals.delivery_failed, delivery_data),
    "issue.clicked": (signals.link_clicked, engagement_data),
    "issue.opened": (signals.email_opened, engagement_data),
    "automation.step": (signals.automation_step_webhook, automation_step_data),
}
