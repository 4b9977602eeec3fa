"""Emails carry the host's branding: logo, colour and postal address, from the newsletter
or else from the site's settings (SIGNALPOST_BRAND_*)."""

import email
import email.policy

import pytest
from django.core.exceptions import ValidationError

from signalpost.newsletters import emails
from signalpost.publishing.models import Delivery
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import issue_create
from tests.factories import make_newsletter, make_profile

pytestmark = pytest.mark.django_db

LOGO = "https://host.example/static/logo.png"


def parts(message):
    """(text, html) of a built ``Message``, as a mail client reads them."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(("html",)).get_content()
    return text, html


def welcome_to(newsletter):
    return emails.message_build(
        kind="welcome",
        profile=make_profile(email="ann@example.com"),
        newsletter=newsletter,
        context={},
        idempotency_key="key-1",
    )


def test_a_newsletters_own_branding_reaches_both_parts_of_its_emails():
    newsletter = make_newsletter(
        brand_logo_url=LOGO, brand_color="#7a1f5c", postal_address="1 Main St\nSpringfield"
    )
    text, html = parts(welcome_to(newsletter))
    assert f'src="{LOGO}"' in html and f'alt="{newsletter.name}"' in html
    assert "#7a1f5c" in html
    assert "1 Main St<br>Springfield" in html
    assert "1 Main St\nSpringfield" in text


def test_the_sites_branding_applies_where_the_newsletter_sets_none(settings):
    settings.SIGNALPOST_BRAND_LOGO_URL = LOGO
    settings.SIGNALPOST_BRAND_COLOR = "#225522"
    settings.SIGNALPOST_BRAND_POSTAL_ADDRESS = "Host Ltd, 2 High St"
    newsletter = make_newsletter(brand_color="#7a1f5c")
    issue = issue_create(newsletter=newsletter, subject="Hello", body_markdown="Hi [there](/x).")
    profile = make_profile(email="bob@example.com")
    message = IssueMessages(issue).personalise(
        Delivery(pk=3, issue=issue, email=profile.email), profile=profile
    )
    text, html = parts(message)
    assert f'src="{LOGO}"' in html
    assert "#7a1f5c" in html and "#225522" not in html
    assert "Host Ltd, 2 High St" in html and "Host Ltd, 2 High St" in text


def test_without_branding_an_email_shows_none():
    _, html = parts(welcome_to(make_newsletter()))
    assert "<img" not in html and "<address" not in html


def test_a_colour_that_is_not_rrggbb_never_reaches_the_stylesheet(settings):
    settings.SIGNALPOST_BRAND_COLOR = "red; } body { background: url(https://evil.example/)"
    _, html = parts(welcome_to(make_newsletter()))
    assert "evil.example" not in html


@pytest.mark.parametrize("color", ["red", "#12345", "#1234567", "#12345g", "#fff; x"])
def test_a_newsletters_colour_must_be_rrggbb(color):
    newsletter = make_newsletter()
    newsletter.brand_color = color
    with pytest.raises(ValidationError) as refused:
        newsletter.full_clean()
    assert "brand_color" in refused.value.message_dict


def test_hostile_branding_text_is_escaped():
    newsletter = make_newsletter(postal_address='<script>alert("x")</script>')
    _, html = parts(welcome_to(newsletter))
    assert "<script>" not in html and "&lt;script&gt;" in html
