"""Subscribing, confirming and leaving, with the emails a real SMTP server receives."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client

from signalpost.accounts.models import Profile
from signalpost.durable.models import DeadLetter
from signalpost.newsletters import links, tokens
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, subscription_end
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import html_part, text_part

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "https://news.example.com"


def path_of(url):
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == SITE
    return parts.path


def link_in(message, pattern):
    match = re.search(pattern, text_part(message))
    assert match, text_part(message)
    return match.group(0)


def list_unsubscribe_url(message):
    return message["List-Unsubscribe"].strip("<>")


def subscribe_by_form(client, email, newsletter_slug, **extra):
    return client.post("/subscribe/", {"user_email": email, "newsletter": newsletter_slug, **extra})


def test_double_opt_in_from_form_to_one_click_unsubscribe(
    client, smtp_inbox, double_opt_in_newsletter
):
    response = subscribe_by_form(client, "jane@example.com", "careful", name="Jane")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    run_form_requests()
    assert Subscription.objects.get().status == "pending"

    run_worker_until_idle()
    [confirmation] = smtp_inbox.wait_for(1)
    assert confirmation["To"] == "jane@example.com"
    assert confirmation["Subject"] == "Confirm your subscription to The Careful"
    assert confirmation["From"] == "Careful Editors <editors@careful.example.com>"
    assert confirmation["Reply-To"] == "letters@careful.example.com"
    assert confirmation["List-Id"] == '"The Careful" <careful.news.example.com>'
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = html_part(confirmation)
    # Inlined, all but the dark-mode @media rules, which no style attribute can hold.
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.DOTALL)
    assert 'style="' in html and [s.lstrip()[:6] for s in styles] == ["@media"], "inlined"
    confirm_url = link_in(confirmation, rf"{SITE}/n/careful/confirm/[^\s]+/")
    assert confirm_url in html

    page = client.get(path_of(confirm_url))
    assert page.status_code == 200
    assert "Yes, subscribe me" in page.content.decode()
    assert Subscription.objects.get().status == "pending", "GET changes nothing"

    confirmed = client.post(path_of(confirm_url))
    assert "You're subscribed" in confirmed.content.decode()
    assert Subscription.objects.get().status == "active"

    run_worker_until_idle()
    messages = smtp_inbox.wait_for(2)
    welcome = messages[1]
    assert welcome["Subject"] == "Welcome to The Careful"
    assert welcome["List-Id"] == confirmation["List-Id"]
    unsubscribe_url = list_unsubscribe_url(welcome)
    assert unsubscribe_url.startswith(f"{SITE}/n/careful/unsubscribe/")
    raw = smtp_inbox.envelopes[1].original_content
    assert f"List-Unsubscribe: <{unsubscribe_url}>".encode() in raw, (
        "a plain URL, not encoded-words"
    )
    assert unsubscribe_url in text_part(welcome), "a visible unsubscribe link"
    assert unsubscribe_url in html_part(welcome)

    mail_provider = Client(enforce_csrf_checks=True)
    response = mail_provider.post(
        path_of(unsubscribe_url),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not response.cookies, "cookieless"
    subscription = Subscription.objects.get()
    assert subscription.status == "unsubscribed"
    assert subscription.unsubscribe_reason == "one-click unsubscribe"
    assert list(subscription.profile.subscriptions.all()) == []

    client.post(path_of(confirm_url))
    assert Subscription.objects.get().status == "unsubscribed", "an old link cannot undo it"


def test_one_click_get_shows_a_button_and_changes_nothing(client, newsletter):
    subscription = subscribe(email="jane@example.com", newsletter=newsletter, source="form")
    path = links.unsubscribe_path(profile=subscription.profile, newsletter=newsletter)
    page = client.get(path)
    assert page.status_code == 200
    assert "<button" in page.content.decode()
    assert Subscription.objects.get().status == "active"


def test_confirming_needs_the_csrf_token_that_one_click_does_not(double_opt_in_newsletter):
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    path = links.confirmation_path(
        profile=subscription.profile, newsletter=double_opt_in_newsletter
    )
    assert Client(enforce_csrf_checks=True).post(path).status_code == 403
    assert Subscription.objects.get().status == "pending"


def test_a_tampered_token_gets_a_friendly_page(client, double_opt_in_newsletter):
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    path = links.confirmation_path(
        profile=subscription.profile, newsletter=double_opt_in_newsletter
    )
    token = path.rstrip("/").rsplit("/", 1)[1]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, "garbage", "x" * 5000, "%00%0d%0a", "é"):
        response = client.post(f"/n/careful/confirm/{bad}/")
        assert response.status_code in (400, 404), bad
        if response.status_code == 400:
            assert "This link does not work" in response.content.decode()
    assert Subscription.objects.get().status == "pending"


def test_an_expired_confirmation_link_offers_a_fresh_start(
    client, double_opt_in_newsletter, monkeypatch, settings
):
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    too_old = settings.SIGNALPOST_CONFIRMATION_MAX_AGE_SECONDS + 60
    real_timestamp = signing.TimestampSigner.timestamp
    monkeypatch.setattr(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(signing.b62_decode(real_timestamp(self)) - too_old),
    )
    path = links.confirmation_path(
        profile=subscription.profile, newsletter=double_opt_in_newsletter
    )
    monkeypatch.undo()

    response = client.post(path)
    assert response.status_code == 410
    page = response.content.decode()
    assert "This link has expired" in page
    assert "/subscribe/?newsletter=careful" in page
    assert Subscription.objects.get().status == "pending"


def test_a_token_for_another_newsletter_is_refused(client, double_opt_in_newsletter):
    other = make_newsletter(slug="other", opt_in="double")
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    subscribe(email="jane@example.com", newsletter=other, source="form")
    path = links.confirmation_path(
        profile=subscription.profile, newsletter=double_opt_in_newsletter
    )
    token = path.rstrip("/").rsplit("/", 1)[1]

    response = client.post(f"/n/other/confirm/{token}/")
    assert response.status_code == 400
    assert "for another newsletter" in response.content.decode()
    assert set(Subscription.objects.values_list("status", flat=True)) == {"pending"}


def test_a_token_for_another_purpose_is_refused(client, double_opt_in_newsletter):
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    unsubscribe_token = tokens.token_make(
        purpose=tokens.UNSUBSCRIBE,
        profile=subscription.profile,
        newsletter=double_opt_in_newsletter,
    )
    response = client.post(f"/n/careful/confirm/{unsubscribe_token}/")
    assert response.status_code == 400
    assert Subscription.objects.get().status == "pending"


def test_fifty_submissions_of_one_address_send_one_confirmation(
    client, smtp_inbox, double_opt_in_newsletter
):
    responses = [subscribe_by_form(client, "jane@example.com", "careful") for _ in range(50)]
    run_worker_until_idle()

    assert len(smtp_inbox.wait_for(1)) == 1
    assert {response.status_code for response in responses[:5]} == {200}
    assert Subscription.objects.count() == 1


def test_the_window_alone_sends_one_confirmation_without_rate_limits(
    client, smtp_inbox, double_opt_in_newsletter, settings
):
    settings.SIGNALPOST_RATE_LIMITS = {key: "0" for key in settings.SIGNALPOST_RATE_LIMITS}
    for _ in range(50):
        assert subscribe_by_form(client, "jane@example.com", "careful").status_code == 200
    run_worker_until_idle()
    assert len(smtp_inbox.messages) == 1


def test_known_and_unknown_addresses_get_identical_answers(client, double_opt_in_newsletter):
    subscription = subscribe(
        email="known@example.com", newsletter=double_opt_in_newsletter, source="admin"
    )
    assert subscription.status == "active"

    known = subscribe_by_form(client, "known@example.com", "careful")
    unknown = subscribe_by_form(client, "unknown@example.com", "careful")

    assert known.status_code == unknown.status_code == 200
    assert known.content.decode().replace("known@", "unknown@") == unknown.content.decode()


def test_a_filled_honeypot_looks_like_success_and_does_nothing(client, double_opt_in_newsletter):
    response = subscribe_by_form(
        client, "bot@example.com", "careful", website="http://spam.example.com"
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    assert Profile.objects.count() == 0


def test_too_many_submissions_from_one_ip_are_refused(client, double_opt_in_newsletter, settings):
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "subscribe_ip": "3/h"}
    statuses = [
        subscribe_by_form(client, f"person{n}@example.com", "careful").status_code for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    run_form_requests()
    assert Profile.objects.count() == 3


def test_rate_limits_use_the_configured_cache_redis(client, double_opt_in_newsletter, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "signalpost.redis_cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/15",
        }
    }
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "subscribe_ip": "2/h"}
    from django.core.cache import cache

    try:
        cache.clear()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    try:
        statuses = [
            subscribe_by_form(client, f"p{n}@example.com", "careful").status_code for n in range(3)
        ]
    finally:
        cache.clear()
    assert statuses == [200, 200, 429]


def test_header_injection_through_a_name_goes_nowhere(client, smtp_inbox, settings):
    make_newsletter(
        slug="evil",
        name="Evil\r\nBcc: victim@example.com",
        opt_in="double",
        sender_name="Sender\nBcc: victim@example.com",
        sender_email="sender@example.com",
    )
    response = subscribe_by_form(
        client, "jane@example.com", "evil", name="Jane\r\nBcc: victim@example.com"
    )
    assert response.status_code == 200
    run_worker_until_idle()

    [message] = smtp_inbox.wait_for(1)
    assert message["Bcc"] is None
    assert smtp_inbox.envelopes[0].rcpt_tos == ["jane@example.com"]
    assert "\n" not in message["List-Id"] and "\n" not in message["From"]
    assert message["Subject"] == "Confirm your subscription to Evil Bcc: victim@example.com"


def test_no_confirmation_email_for_a_subscription_that_ended_before_the_worker_ran(
    smtp_inbox, double_opt_in_newsletter
):
    subscription = subscribe(
        email="jane@example.com", newsletter=double_opt_in_newsletter, source="form"
    )
    subscription_end(
        profile=subscription.profile, newsletter=double_opt_in_newsletter, reason="changed mind"
    )
    run_worker_until_idle()
    assert smtp_inbox.messages == []


def test_imports_and_staff_additions_get_no_welcome(smtp_inbox, newsletter):
    subscribe(email="imported@example.com", newsletter=newsletter, source="import")
    subscribe(email="added@example.com", newsletter=newsletter, source="admin")
    subscribe(email="asked@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["asked@example.com"]


def test_a_refused_recipient_is_dead_lettered_at_once(smtp_inbox, double_opt_in_newsletter):
    smtp_inbox.refuse.add("nobody@example.com")
    subscribe(email="nobody@example.com", newsletter=double_opt_in_newsletter, source="form")
    run_worker_until_idle()

    dead_letter = DeadLetter.objects.get()
    assert dead_letter.attempts == 1
    assert dead_letter.error_class.endswith("PermanentFailure")
    assert "550" in dead_letter.last_error


def test_an_unreachable_mail_server_is_retried_later(settings, double_opt_in_newsletter):
    from django_tasks_db.models import DBTaskResult

    from tests.mail import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    subscribe(email="jane@example.com", newsletter=double_opt_in_newsletter, source="form")
    run_worker_until_idle()

    assert DeadLetter.objects.count() == 0
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.args_kwargs["kwargs"]["attempt"] == 2


def test_newsletter_page_shows_a_subscribe_form(client, double_opt_in_newsletter):
    page = client.get("/n/careful/")
    assert page.status_code == 200
    assert "Subscribe to The Careful" in page.content.decode()
    make_newsletter(slug="hidden", is_public=False)
    assert client.get("/n/hidden/").status_code == 404
    assert client.get("/n/nothing-here/").status_code == 404
