"""The writer's desk in the admin: write with a live preview of the real email, send or
schedule after one confirmation that states the recipients, test to any addresses, and
pause, resume or cancel a send from the issue's page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from signalpost.newsletters.services import subscribe, subscription_end
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import (
    TEST_RECIPIENTS_MAX,
    issue_create,
    issue_pause,
)
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

ISSUES = "/admin/publishing/issue/"


def staff_with(client, *codenames):
    """Log in a staff user holding only the permissions named ``app_label.codename``."""
    user = make_user(is_staff=True)
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client.force_login(user)
    return user


@pytest.fixture
def letter(db):
    letter = make_newsletter(slug="weekly", name="The Weekly")
    for number in range(7):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    subscription_end(
        profile=Delivery._meta.get_field("profile").related_model.objects.get(
            email="reader6@example.com"
        ),
        newsletter=letter,
        reason="left",
    )
    return letter


@pytest.fixture
def draft(letter):
    return issue_create(newsletter=letter, subject="Hello readers", body_markdown="Hi **all**.")


@pytest.fixture
def sender(client):
    return staff_with(
        client, "publishing.view_issue", "publishing.change_issue", "publishing.send_issue"
    )


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# Sending: one confirmation that states the newsletter, the recipients and the subject.


def test_a_draft_shows_its_exact_current_recipient_count(client, sender, draft):
    assert "6 active subscribers now" in page(client, f"{ISSUES}{draft.pk}/change/")


def test_the_send_button_confirms_newsletter_subject_and_recipients_then_sends_once(
    client, sender, draft, smtp_inbox
):
    change = page(client, f"{ISSUES}{draft.pk}/change/")
    assert f"{ISSUES}{draft.pk}/send/" in change
    confirm = page(client, f"{ISSUES}{draft.pk}/send/")
    assert "The Weekly" in confirm and "Hello readers" in confirm
    assert '<strong id="recipient-count">6</strong>' in confirm
    assert "Send now to 6 subscribers" in confirm
    assert Issue.objects.get(pk=draft.pk).status == "draft", "showing it sends nothing"

    response = client.post(f"{ISSUES}{draft.pk}/send/", {"send": "1"})
    assert response.status_code == 302
    client.post(f"{ISSUES}{draft.pk}/send/", {"send": "1"})  # a second press sends nothing
    run_worker_until_idle()
    assert len(smtp_inbox.wait_for(6)) == 6
    assert Issue.objects.get(pk=draft.pk).recipient_count == 6


def test_sending_is_no_longer_a_bulk_action(client, sender, draft):
    response = client.get(ISSUES)
    offered = {name for name, _ in response.context["action_form"].fields["action"].choices}
    assert {"send_now", "schedule"}.isdisjoint(offered)
    client.post(ISSUES, {"action": "send_now", "_selected_action": [draft.pk]})
    assert Issue.objects.get(pk=draft.pk).status == "draft"


def test_scheduling_asks_once_and_refuses_a_past_or_malformed_time(client, sender, draft):
    url = f"{ISSUES}{draft.pk}/send/"
    when = timezone.localtime(timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    for bad in ["", "next tuesday", "2020-01-01T09:00", "9" * 500, "2026-13-45T99:99"]:
        response = client.post(url, {"schedule": "1", "scheduled_at": bad})
        assert response.status_code == 200
        assert response.context["schedule_form"].errors["scheduled_at"]
        assert Issue.objects.get(pk=draft.pk).status == "draft"
    response = client.post(url, {"schedule": "1", "scheduled_at": f"{when:%Y-%m-%dT%H:%M}"})
    assert response.status_code == 302
    issue = Issue.objects.get(pk=draft.pk)
    assert (issue.status, issue.scheduled_at) == ("scheduled", when)


def test_staff_without_the_send_permission_get_no_send_page(client, draft):
    staff_with(client, "publishing.view_issue", "publishing.change_issue")
    assert f"{ISSUES}{draft.pk}/send/" not in page(client, f"{ISSUES}{draft.pk}/change/")
    for path in ["send", "test", "pause", "resume", "cancel"]:
        assert client.get(f"{ISSUES}{draft.pk}/{path}/").status_code in {403, 405}
        assert client.post(f"{ISSUES}{draft.pk}/{path}/", {"send": "1"}).status_code == 403
    assert Issue.objects.get(pk=draft.pk).status == "draft"


def test_desk_pages_of_an_unknown_issue_are_404(client, sender):
    for path in ["send", "test", "cancel", "write"]:
        assert client.get(f"{ISSUES}999999/{path}/").status_code == 404


# Test sends to any addresses.


def test_a_test_goes_to_every_address_listed_and_to_nobody_else(client, sender, draft, smtp_inbox):
    response = client.post(
        f"{ISSUES}{draft.pk}/test/",
        {"to_emails": "Editor@Example.com, proof@example.org\nproof@example.org;boss@example.net"},
    )
    assert response.status_code == 302
    messages = smtp_inbox.wait_for(3)
    assert sorted(m["To"] for m in messages) == [
        "boss@example.net",
        "editor@example.com",
        "proof@example.org",
    ]
    assert all(m["Subject"] == "[Test] Hello readers" for m in messages)
    assert not Delivery.objects.exists(), "nothing recorded"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("", "Enter at least one"),
        ("not-an-address", "'not-an-address'"),
        ("ok@example.com, someone@localhost", "'someone@localhost'"),
        ("a@[127.0.0.1]", "IP address"),
        ("x@example.com\x00", "Null characters are not allowed"),
        ("<script>@example.com", "'<script>@example.com'"),
        (",".join(f"r{n}@example.com" for n in range(TEST_RECIPIENTS_MAX + 1)), "at most 20"),
        ("a" * 6000, "Ensure this value has at most"),
    ],
)
def test_a_test_with_a_bad_address_sends_nothing_and_names_it(
    client, sender, draft, smtp_inbox, raw, named
):
    response = client.post(f"{ISSUES}{draft.pk}/test/", {"to_emails": raw})
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["to_emails"])
    assert named in errors
    assert smtp_inbox.envelopes == []


# Pause, resume and cancel from the issue's page.


def test_the_issue_page_pauses_resumes_and_cancels_its_send(client, sender, draft, smtp_inbox):
    issue_send_prepared(issue=draft)
    change = page(client, f"{ISSUES}{draft.pk}/change/")
    assert "Pause the send" in change and "Cancel the send" in change
    client.post(f"{ISSUES}{draft.pk}/pause/")
    assert Issue.objects.get(pk=draft.pk).status == "paused"
    assert "Resume the send" in page(client, f"{ISSUES}{draft.pk}/change/")
    client.post(f"{ISSUES}{draft.pk}/resume/")
    assert Issue.objects.get(pk=draft.pk).status == "sending"

    confirm = page(client, f"{ISSUES}{draft.pk}/cancel/")
    assert "6 messages not sent yet are never sent" in confirm.replace("the 6", "6")
    assert Issue.objects.get(pk=draft.pk).status == "sending", "showing it cancels nothing"
    client.post(f"{ISSUES}{draft.pk}/cancel/")
    run_worker_until_idle()
    assert Issue.objects.get(pk=draft.pk).status == "cancelled"
    assert smtp_inbox.envelopes == []
    assert "6</span> cancelled" in page(client, f"{ISSUES}{draft.pk}/change/")


def test_pausing_a_draft_from_a_stale_page_says_why_and_changes_nothing(client, sender, draft):
    response = client.post(f"{ISSUES}{draft.pk}/pause/", follow=True)
    assert "not being sent" in response.content.decode()
    assert Issue.objects.get(pk=draft.pk).status == "draft"
    assert client.get(f"{ISSUES}{draft.pk}/pause/").status_code == 405


def test_a_paused_send_can_be_cancelled(client, sender, draft):
    issue_send_prepared(issue=draft)
    issue_pause(issue=draft)
    client.post(f"{ISSUES}{draft.pk}/cancel/")
    assert Issue.objects.get(pk=draft.pk).status == "cancelled"


# The writing page.


def test_the_writing_page_shows_the_real_email_in_a_sandboxed_frame(client, sender, draft):
    html = page(client, f"{ISSUES}{draft.pk}/write/")
    assert 'sandbox=""' in html
    assert "srcdoc=" in html
    assert "Hi &lt;strong&gt;all&lt;/strong&gt;" in html, "the body, escaped into srcdoc"
    assert "unsubscribe" in html.lower(), "the newsletter's template, with its footer"
    assert "Markdown help" in html


def test_the_preview_endpoint_renders_the_email_as_typed_without_saving(client, sender, draft):
    response = client.post(
        f"{ISSUES}{draft.pk}/preview/",
        {"subject": "A new subject", "body_markdown": "## Big heading\n\nHello{{ name }}"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "A new subject"
    assert "Big heading</h2>" in body["html"]
    assert "The Weekly" in body["html"]
    assert "Ada" in body["html"], "personalised for the sample reader"
    issue = Issue.objects.get(pk=draft.pk)
    assert (issue.subject, issue.body_markdown) == ("Hello readers", "Hi **all**.")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"subject": "", "body_markdown": "x"}, "subject"),
        ({"body_markdown": "x"}, "subject"),
        ({"subject": "Two\nlines", "body_markdown": "x"}, "subject"),
        ({"subject": "s" * 201, "body_markdown": "x"}, "subject"),
        ({"subject": "Ok", "body_markdown": "x" * 100_001}, "body_markdown"),
        ({"subject": "Ok", "body_markdown": "nul\x00"}, "body_markdown"),
    ],
)
def test_the_preview_endpoint_names_the_field_it_refuses(client, sender, draft, data, field):
    response = client.post(f"{ISSUES}{draft.pk}/preview/", data)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_markdown_the_sandbox_refuses_shows_on_the_body_field(client, sender, draft, monkeypatch):
    from signalpost.publishing import markdown_sandbox

    def too_slow(text, *, timeout):
        raise markdown_sandbox.RenderFailed("timeout", timeout)

    monkeypatch.setattr(markdown_sandbox, "render", too_slow)
    response = client.post(f"{ISSUES}{draft.pk}/preview/", {"subject": "Ok", "body_markdown": "["})
    assert response.status_code == 400
    [error] = response.json()["errors"]["body_markdown"]
    assert "took too long to render" in error["message"]
    saved = client.post(f"{ISSUES}{draft.pk}/write/", {"subject": "Ok", "body_markdown": "["})
    assert saved.status_code == 200
    assert "took too long to render" in saved.content.decode()
    assert Issue.objects.get(pk=draft.pk).body_markdown == "Hi **all**.", "nothing lost"


def test_without_javascript_save_keeps_the_text_and_shows_its_preview(client, sender, draft):
    response = client.post(
        f"{ISSUES}{draft.pk}/write/", {"subject": "Saved subject", "body_markdown": "*Saved*"}
    )
    assert response.status_code == 302
    html = page(client, f"{ISSUES}{draft.pk}/write/")
    assert "&lt;em&gt;Saved&lt;/em&gt;" in html
    assert Issue.objects.get(pk=draft.pk).subject == "Saved subject"


def test_a_sent_issue_cannot_be_rewritten(client, sender, draft):
    issue_send_prepared(issue=draft)
    assert client.get(f"{ISSUES}{draft.pk}/write/").status_code == 403
    assert client.post(f"{ISSUES}{draft.pk}/preview/", {"subject": "x"}).status_code == 403
