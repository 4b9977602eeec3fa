"""A fair soft-bounce policy: delays are not bounces, soft bounces count in a window,
and mail that gets through wipes the slate.

Through the provider's tracking webhook (anymail, Postmark's format) and the
``bounce_record`` service the bounce processing of plain SMTP uses too.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import bounce_record, subscribe
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from tests.factories import make_newsletter
from tests.test_webhooks_and_bounces import bounce, postmark

pytestmark = pytest.mark.django_db

ADDRESS = "full@example.com"


@pytest.fixture
def subscribed(settings):
    settings.SIGNALPOST_SOFT_BOUNCE_LIMIT = 3
    settings.SIGNALPOST_SOFT_BOUNCE_WINDOW_DAYS = 30
    settings.SIGNALPOST_DELIVERY_SETTLED_DAYS = 3
    newsletter = make_newsletter()
    subscribe(email=ADDRESS, newsletter=newsletter, source="admin")
    return newsletter


def soft_bounces_ago(*days):
    """Pretend the address soft-bounced ``days`` ago (each)."""
    moments = [(timezone.now() - timedelta(days=d)).isoformat() for d in sorted(days)[::-1]]
    Profile.objects.filter(email=ADDRESS).update(soft_bounces=moments, soft_bounce_count=len(days))


def status():
    return Subscription.objects.get(profile__email=ADDRESS).status


def test_deferrals_from_the_provider_are_not_bounces(client, subscribed):
    for kind in ["Transient", "DnsError"] * 3:
        assert postmark(client, bounce(ADDRESS, kind=kind)).status_code == 200

    assert status() == "active"
    assert Profile.objects.get(email=ADDRESS).soft_bounce_count == 0


def test_soft_bounces_spread_beyond_the_window_never_end_a_subscription(subscribed):
    soft_bounces_ago(65, 40)

    bounce_record(email=ADDRESS, permanent=False)

    assert status() == "active"
    assert Profile.objects.get(email=ADDRESS).soft_bounce_count == 1


def test_the_third_soft_bounce_within_the_window_ends_it(subscribed):
    soft_bounces_ago(29, 10)

    ended = bounce_record(email=ADDRESS, permanent=False, description="452 4.2.2 full")

    assert [s.status for s in ended] == ["bounced"]
    assert status() == "bounced"


def test_a_delivery_that_got_through_since_the_last_soft_bounce_resets_the_count(subscribed):
    soft_bounces_ago(20, 10)
    issue = issue_create(newsletter=subscribed, subject="Hi", body_markdown="x")
    profile = Profile.objects.get(email=ADDRESS)
    Delivery.objects.create(
        issue=issue,
        profile=profile,
        email=ADDRESS,
        status=Delivery.Status.SENT,
        sent_at=timezone.now() - timedelta(days=7),
    )

    bounce_record(email=ADDRESS, permanent=False)

    assert status() == "active"
    assert Profile.objects.get(email=ADDRESS).soft_bounce_count == 1


def test_a_delivery_sent_too_recently_to_have_bounced_does_not_reset_it(subscribed):
    soft_bounces_ago(20, 10)
    issue = issue_create(newsletter=subscribed, subject="Hi", body_markdown="x")
    Delivery.objects.create(
        issue=issue,
        profile=Profile.objects.get(email=ADDRESS),
        email=ADDRESS,
        status=Delivery.Status.SENT,
        sent_at=timezone.now() - timedelta(hours=6),  # the one now bouncing, likely
    )

    bounce_record(email=ADDRESS, permanent=False)

    assert status() == "bounced"


def test_a_delivered_event_from_the_provider_resets_the_count(client, subscribed):
    soft_bounces_ago(5, 2)
    delivered = {
        "RecordType": "Delivery",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": ADDRESS,
        "DeliveredAt": "2026-11-23T10:00:00Z",
        "Details": "Test delivery webhook details",
        "Tag": "",
        "ServerID": 23,
        "Metadata": {},
    }

    assert postmark(client, delivered).status_code == 200
    bounce_record(email=ADDRESS, permanent=False)

    assert status() == "active"
    assert Profile.objects.get(email=ADDRESS).soft_bounce_count == 1


def test_unreadable_stored_moments_are_ignored(subscribed):
    Profile.objects.filter(email=ADDRESS).update(soft_bounces=["garbage", 12, None])

    bounce_record(email=ADDRESS, permanent=False)

    assert Profile.objects.get(email=ADDRESS).soft_bounce_count == 1
