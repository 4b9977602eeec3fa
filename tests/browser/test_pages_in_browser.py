"""The public pages in a real browser: what a visitor sees and what it changes."""

from urllib.parse import urlencode

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Subscription, Topic
from tests.durable_helpers import run_form_requests

try:
    from playwright.sync_api import expect
except ImportError:  # The `browser` fixture skips, or fails in CI, with how to install.
    expect = None

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"


@pytest.fixture
def newsletter():
    topic = Topic.objects.create(slug="python", name="Python")
    newsletter = Newsletter.objects.create(
        slug="weekly-python",
        name="Weekly Python",
        description="The week's Python news, every Friday.",
        opt_in=Newsletter.OptIn.SINGLE,
        is_public=True,
    )
    newsletter.topics.add(topic)
    return newsletter


def test_visitor_subscribes_from_home_page_card(live_server, page, screenshot, newsletter):
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Python", level=2)).to_be_visible()
    card = page.locator("li.card").filter(has_text="Weekly Python")
    expect(card).to_be_visible()
    screenshot(page, "home")

    card.get_by_label("Email address for Weekly Python").fill(EMAIL)
    card.get_by_role("button", name="Subscribe").click()

    expect(page.get_by_role("heading", name="Subscribed", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Subscribed {EMAIL} to Weekly Python")
    screenshot(page, "subscribed")
    run_form_requests()
    subscription = Subscription.objects.get(profile__email=EMAIL, newsletter=newsletter)
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.source == Subscription.Source.FORM
    assert list(subscription.profile.subscriptions.all()) == [newsletter]


def test_subscribe_form_shows_error_for_invalid_address(live_server, page, screenshot, newsletter):
    query = urlencode({"newsletter": newsletter.slug})
    page.goto(f"{live_server.url}/subscribe/?{query}")
    expect(page.get_by_label("Newsletter")).to_have_value(newsletter.slug)
    page.get_by_label("Email address").fill("not-an-address")
    screenshot(page, "filled")

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Subscribe").click()

    assert posted.value.status == 400
    errors = page.get_by_role("alert")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("user_email: That is not a valid email address.")
    expect(page.get_by_label("Email address")).to_have_value("not-an-address")
    screenshot(page, "error")
    assert not Subscription.objects.exists()
    assert not Profile.objects.exists()


def test_subscriber_unsubscribes_through_prefilled_link(live_server, page, screenshot, newsletter):
    profile = Profile.objects.create(email=EMAIL)
    subscription = Subscription.objects.create(
        profile=profile,
        newsletter=newsletter,
        status=Subscription.Status.ACTIVE,
        source=Subscription.Source.FORM,
        subscribed_at=timezone.now(),
    )
    profile.subscriptions.add(newsletter)

    query = urlencode({"user_email": EMAIL, "newsletter": newsletter.slug})
    page.goto(f"{live_server.url}/unsubscribe/?{query}")
    expect(page.get_by_label("Email address")).to_have_value(EMAIL)
    expect(page.get_by_label("Newsletter")).to_have_value(newsletter.slug)
    screenshot(page, "unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()

    expect(page.get_by_role("heading", name="Unsubscribed", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(
        f"{EMAIL} will get no more email from Weekly Python"
    )
    screenshot(page, "unsubscribed")
    run_form_requests()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.UNSUBSCRIBED
