"""A subscriber's whole life in a real browser, following the links of real emails.

Subscribe on the newsletter page, confirm from the confirmation email, join a
second newsletter in the preference center linked from the welcome email, and
leave the first through the welcome email's List-Unsubscribe link. The emails
travel through a real SMTP server on loopback, sent by an in-process worker.
"""

import re

import pytest

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Subscription, Topic
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.mail import text_part

try:
    from playwright.sync_api import expect
except ImportError:  # The `browser` fixture skips, or fails in CI, with how to install.
    expect = None

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "grace@example.com"


@pytest.fixture
def site_url(live_server, smtp_inbox, settings):
    """Links in emails point at the live server (``smtp_inbox`` sets another site)."""
    settings.SIGNALPOST_SITE_URL = live_server.url
    return live_server.url


@pytest.fixture
def newsletters():
    topic = Topic.objects.create(slug="science", name="Science")
    careful = Newsletter.objects.create(
        slug="careful",
        name="The Careful",
        description="Slow, checked science news, once a month.",
        opt_in=Newsletter.OptIn.DOUBLE,
        is_public=True,
        sender_name="Careful Editors",
        sender_email="editors@careful.example.com",
    )
    careful.topics.add(topic)
    digest = Newsletter.objects.create(
        slug="digest",
        name="The Digest",
        description="Everything else, every Monday.",
        opt_in=Newsletter.OptIn.SINGLE,
        is_public=True,
    )
    digest.topics.add(topic)
    return careful, digest


def link_in(message, pattern):
    """Return the first match of ``pattern`` in the message's plain-text part."""
    text = text_part(message)
    match = re.search(pattern, text)
    assert match, text
    return match.group(1) if match.groups() else match.group(0)


def status_of(newsletter):
    return Subscription.objects.get(profile__email=EMAIL, newsletter=newsletter).status


def test_subscriber_confirms_manages_and_unsubscribes_from_emails(
    site_url, smtp_inbox, page, screenshot, newsletters
):
    careful, digest = newsletters

    # Subscribe on the newsletter's page.
    page.goto(f"{site_url}/n/careful/")
    expect(page.get_by_role("heading", name="The Careful", level=1)).to_be_visible()
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Name (optional)").fill("Grace")
    screenshot(page, "1-newsletter-page")
    page.get_by_role("button", name="Subscribe to The Careful").click()

    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"We sent a confirmation link to {EMAIL}")
    screenshot(page, "2-check-your-inbox")
    run_form_requests()
    assert status_of(careful) == Subscription.Status.PENDING

    # Confirm from the confirmation email: GET shows a button, POST confirms.
    run_worker_until_idle()
    [confirmation] = smtp_inbox.wait_for(1)
    assert confirmation["To"] == EMAIL
    assert confirmation["Subject"] == "Confirm your subscription to The Careful"
    confirm_url = link_in(confirmation, rf"{re.escape(site_url)}/n/careful/confirm/\S+/")

    page.goto(confirm_url)
    expect(page.get_by_role("heading", name="Confirm your subscription", level=1)).to_be_visible()
    screenshot(page, "3-confirm")
    assert status_of(careful) == Subscription.Status.PENDING, "opening the link changes nothing"
    page.get_by_role("button", name="Yes, subscribe me").click()

    expect(page.get_by_role("heading", name="You're subscribed", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"{EMAIL} will now receive The Careful")
    screenshot(page, "4-confirmed")
    assert status_of(careful) == Subscription.Status.ACTIVE

    # The welcome email, and the preference center it links to.
    run_worker_until_idle()
    welcome = smtp_inbox.wait_for(2)[1]
    assert welcome["To"] == EMAIL
    assert welcome["Subject"] == "Welcome to The Careful"
    assert welcome["List-Unsubscribe"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome["List-Id"]
    preferences_url = link_in(
        welcome, rf"Manage your subscriptions: ({re.escape(site_url)}/preferences/\S+/)"
    )

    page.goto(preferences_url)
    expect(page.get_by_role("heading", name="Your subscriptions", level=1)).to_be_visible()
    expect(page.get_by_role("checkbox", name="The Careful")).to_be_checked()
    expect(page.get_by_role("checkbox", name="The Digest")).not_to_be_checked()
    expect(page.get_by_label("Your name")).to_have_value("Grace")
    screenshot(page, "5-preferences")
    page.get_by_role("checkbox", name="The Digest").check()
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_role("button", name="Save").click()

    notice = page.get_by_role("status")
    expect(notice).to_contain_text("Saved.")
    expect(notice).to_contain_text("Joined: The Digest.")
    expect(page.get_by_role("checkbox", name="The Careful")).to_be_checked()
    expect(page.get_by_role("checkbox", name="The Digest")).to_be_checked()
    expect(page.get_by_label("Your name")).to_have_value("Grace Hopper")
    screenshot(page, "6-preferences-saved")
    assert status_of(careful) == Subscription.Status.ACTIVE
    assert status_of(digest) == Subscription.Status.ACTIVE
    assert Profile.objects.get(email=EMAIL).name == "Grace Hopper"

    # Leave the first newsletter through the welcome email's List-Unsubscribe link.
    unsubscribe_url = welcome["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith(f"{site_url}/n/careful/unsubscribe/")

    page.goto(unsubscribe_url)
    heading = page.get_by_role("heading", name="Unsubscribe from The Careful", level=1)
    expect(heading).to_be_visible()
    expect(page.locator("main").get_by_role("button")).to_have_count(1)
    screenshot(page, "7-unsubscribe")
    assert status_of(careful) == Subscription.Status.ACTIVE, "opening the link changes nothing"
    page.get_by_role("button", name="Unsubscribe").click()

    expect(page.get_by_role("heading", name="You're unsubscribed", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(
        f"{EMAIL} will get no more email from The Careful"
    )
    screenshot(page, "8-unsubscribed")
    assert status_of(careful) == Subscription.Status.UNSUBSCRIBED
    assert status_of(digest) == Subscription.Status.ACTIVE
