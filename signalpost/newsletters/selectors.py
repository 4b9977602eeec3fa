"""Reads of newsletters and subscriptions."""

from django.db.models import Prefetch

from signalpost.newsletters.models import Newsletter, Subscription, Topic


def newsletters_public():
    """Return the public newsletters, by name, with their topics."""
    return Newsletter.objects.filter(is_public=True).prefetch_related("topics")


def topics_with_public_newsletters():
    """Return ``(topics, untopical)``: topics having public newsletters, and the rest.

    Each topic carries ``public_newsletters``; a newsletter with several topics
    is listed under each of them.
    """
    topics = (
        Topic.objects.filter(newsletters__is_public=True)
        .distinct()
        .prefetch_related(
            Prefetch(
                "newsletters",
                queryset=Newsletter.objects.filter(is_public=True),
                to_attr="public_newsletters",
            )
        )
    )
    untopical = Newsletter.objects.filter(is_public=True, topics=None)
    return list(topics), list(untopical)


def subscriptions_active(*, newsletter):
    """Return ``newsletter``'s active subscriptions with their profiles."""
    return Subscription.objects.filter(
        newsletter=newsletter, status=Subscription.Status.ACTIVE
    ).select_related("profile")
