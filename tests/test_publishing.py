"""Writing an issue, sending it to every active subscriber exactly once, and the archive."""

from io import StringIO
from urllib.parse import urlsplit

import feedparser
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters import tokens
from signalpost.newsletters.services import subscribe, subscription_end
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.rendering import markdown_to_html
from signalpost.publishing.services import (
    BODY_MAX_LENGTH,
    issue_create,
    issue_schedule,
    issue_send,
)
from signalpost.signals import delivery_failed, issue_sent
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user
from tests.mail import html_part, text_part
from tests.recorders import SignalRecorder
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def letter(db):
    return make_newsletter(
        slug="weekly",
        name="The Weekly",
        sender_name="Weekly Editors",
        sender_email="editors@weekly.example.com",
    )


@pytest.fixture
def audience(letter):
    """Three active subscribers, one pending, one who left."""
    for email, name in [
        ("ann@example.com", "Ann"),
        ("bob@example.com", ""),
        ("cy@example.com", "Cy"),
    ]:
        subscribe(email=email, name=name, newsletter=letter, source="admin")
    pending = subscribe(email="pending@example.com", newsletter=letter, source="admin")
    pending.status = "pending"
    pending.save()
    subscribe(email="left@example.com", newsletter=letter, source="admin")
    subscription_end(
        profile=pending.profile.__class__.objects.get(email="left@example.com"),
        newsletter=letter,
        reason="bye",
    )
    return ["ann@example.com", "bob@example.com", "cy@example.com"]


def draft(
    letter, subject="First issue", body="Hello **world**.\n\n[Read more](https://example.com)"
):
    return issue_create(newsletter=letter, subject=subject, body_markdown=body)


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_every_active_subscriber_gets_exactly_one_personal_message(
    smtp_inbox, letter, audience, pipelining
):
    smtp_inbox.pipelining = pipelining
    issue = draft(letter)
    with SignalRecorder(issue_sent) as sent:
        assert issue_send(issue=issue) is True
        run_worker_until_idle()

    messages = smtp_inbox.wait_for(3)
    assert sorted(message["To"] for message in messages) == audience
    assert len(smtp_inbox.envelopes) == 3
    for message in messages:
        assert message["Subject"] == "First issue"
        assert message["From"] == "Weekly Editors <editors@weekly.example.com>"
        assert message["List-Id"] == '"The Weekly" <weekly.news.example.com>'
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe_url = message["List-Unsubscribe"].strip("<>")
        raw = next(
            e.original_content for e in smtp_inbox.envelopes if e.rcpt_tos == [message["To"]]
        )
        assert f"List-Unsubscribe: <{unsubscribe_url}>".encode() in raw
        token = urlsplit(unsubscribe_url).path.rstrip("/").rsplit("/", 1)[1]
        profile_id, newsletter_id = tokens.token_read(token=token, purpose=tokens.UNSUBSCRIBE)
        assert newsletter_id == letter.pk
        delivery = Delivery.objects.get(issue=issue, email=message["To"])
        assert profile_id == delivery.profile_id, "each recipient gets their own link"
        assert unsubscribe_url in text_part(message)
        assert "<strong>world</strong>" in html_part(message)
        assert message["Message-ID"] == delivery.message_id
    ann = next(m for m in messages if m["To"] == "ann@example.com")
    bob = next(m for m in messages if m["To"] == "bob@example.com")
    assert "Hello Ann," in text_part(ann)
    assert "Hello," in text_part(bob)

    issue.refresh_from_db()
    assert issue.status == "sent"
    assert sent.calls[0]["sent_count"] == 3 and sent.calls[0]["failed_count"] == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_sending_twice_sends_once(smtp_inbox, letter, audience):
    issue = draft(letter)
    issue_send(issue=issue)
    assert issue_send(issue=issue) is False
    run_worker_until_idle()
    assert len(smtp_inbox.wait_for(3)) == 3


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_refused_recipients_fail_and_the_rest_are_sent(smtp_inbox, letter, audience, pipelining):
    smtp_inbox.pipelining = pipelining
    smtp_inbox.refuse.add("bob@example.com")
    issue = draft(letter)
    with SignalRecorder(delivery_failed) as failed:
        issue_send(issue=issue)
        run_worker_until_idle()

    assert sorted(m["To"] for m in smtp_inbox.wait_for(2)) == ["ann@example.com", "cy@example.com"]
    statuses = dict(Delivery.objects.values_list("email", "status"))
    assert statuses == {
        "ann@example.com": "sent",
        "bob@example.com": "failed",
        "cy@example.com": "sent",
    }
    assert "550" in Delivery.objects.get(email="bob@example.com").last_error
    assert [call["user_email"] for call in failed.calls] == ["bob@example.com"]
    issue.refresh_from_db()
    assert issue.status == "sent"


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_temporary_refusal_is_retried_later(smtp_inbox, letter, audience, pipelining):
    smtp_inbox.pipelining = pipelining
    smtp_inbox.temporarily_refuse["bob@example.com"] = 1
    issue = draft(letter)
    issue_send(issue=issue)
    run_worker_until_idle()

    bob = Delivery.objects.get(email="bob@example.com")
    assert bob.status == "queued" and bob.attempts == 1
    assert "451" in bob.last_error
    issue.refresh_from_db()
    assert issue.status == "sending"
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.run_after > timezone.now()

    retry.run_after = timezone.now()
    retry.save()
    run_worker_until_idle()
    assert Delivery.objects.get(email="bob@example.com").status == "sent"
    assert len(smtp_inbox.to("bob@example.com")) == 1
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_a_batch_that_fails_outside_smtp_is_given_back_and_finished_later(
    smtp_inbox, letter, audience, monkeypatch
):
    from django.db import DatabaseError

    from signalpost.publishing.writes import SentMarks

    real_mark = SentMarks.mark
    calls = []

    def mark_then_lose_the_database(self, delivery, *, message_id):
        calls.append(delivery.email)
        if len(calls) == 2:
            raise DatabaseError("server closed the connection unexpectedly")
        return real_mark(self, delivery, message_id=message_id)

    monkeypatch.setattr(SentMarks, "mark", mark_then_lose_the_database)
    issue = draft(letter)
    issue_send(issue=issue)
    run_worker_until_idle()

    # The second message went out but was never marked: it is the message in flight.
    in_flight = calls[1]
    assert len(smtp_inbox.wait_for(2)) == 2
    statuses = dict(Delivery.objects.values_list("email", "status"))
    assert statuses[calls[0]] == "sent"
    assert sorted(statuses.values()) == ["queued", "queued", "sent"]
    assert DBTaskResult.objects.filter(status="FAILED").count() == 1
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.run_after > timezone.now()

    monkeypatch.setattr(SentMarks, "mark", real_mark)
    retry.run_after = timezone.now()
    retry.save()
    run_worker_until_idle()

    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    received = [message["To"] for message in smtp_inbox.wait_for(4)]
    assert sorted(received) == sorted([*audience, in_flight])
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_a_failure_that_repeats_fails_the_delivery_instead_of_resending_it(
    smtp_inbox, letter, audience, monkeypatch, settings
):
    from django.db import DatabaseError

    from signalpost.publishing.writes import SentMarks

    settings.SIGNALPOST_SEND_MAX_ATTEMPTS = 2
    real_mark = SentMarks.mark

    def never_marks_ann(self, delivery, *, message_id):
        if delivery.email == "ann@example.com":
            raise DatabaseError("this row cannot be written")
        return real_mark(self, delivery, message_id=message_id)

    monkeypatch.setattr(SentMarks, "mark", never_marks_ann)
    issue = draft(letter)
    issue_send(issue=issue)
    for _ in range(4):
        run_worker_until_idle()
        DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())
    run_worker_until_idle()

    ann = Delivery.objects.get(email="ann@example.com")
    assert ann.status == "failed"
    assert "gave up after 2 attempts" in ann.last_error
    assert len(smtp_inbox.to("ann@example.com")) == 2
    for other in ("bob@example.com", "cy@example.com"):
        assert Delivery.objects.get(email=other).status == "sent"
        assert len(smtp_inbox.to(other)) == 1
    assert not DBTaskResult.objects.filter(status="READY").exists()
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_an_unsubscribe_during_a_send_stops_that_delivery(smtp_inbox, letter, audience):
    issue = draft(letter)
    issue_send_prepared(issue=issue)
    subscription_end(
        profile=Delivery.objects.get(email="cy@example.com").profile,
        newsletter=letter,
        reason="left mid-send",
    )
    run_worker_until_idle()

    assert sorted(m["To"] for m in smtp_inbox.wait_for(2)) == ["ann@example.com", "bob@example.com"]
    assert Delivery.objects.get(email="cy@example.com").status == "skipped"
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_progress_reports_the_right_counts_during_a_send(
    client, smtp_inbox, letter, audience, settings
):
    settings.SIGNALPOST_SEND_BATCH_SIZE = 2
    staff = make_user(username="editor", is_staff=True, is_superuser=True)
    client.force_login(staff)
    issue = draft(letter)
    issue_send_prepared(issue=issue)
    call_command(
        "db_worker",
        "--batch",
        "--max-tasks=1",
        "--no-reload",
        "--no-startup-delay",
        verbosity=0,
        stdout=StringIO(),
    )

    progress = client.get(f"/admin/publishing/issue/{issue.pk}/progress/").json()
    assert (progress["total"], progress["sent"], progress["remaining"]) == (3, 2, 1)
    assert progress["status"] == "sending"
    assert progress["percent"] == pytest.approx(66.7)
    page = client.get(f"/admin/publishing/issue/{issue.pk}/change/").content.decode()
    assert 'id="progress-bar" max="100" value="66.7"' in page

    run_worker_until_idle()
    done = client.get(f"/admin/publishing/issue/{issue.pk}/progress/").json()
    assert (done["sent"], done["remaining"], done["status"]) == (3, 0, "sent")


def test_the_archive_the_web_version_and_the_atom_feed(client, smtp_inbox, letter, audience):
    first = draft(letter, subject="First issue")
    issue_send(issue=first)
    second = draft(letter, subject="Second <issue>", body="Hi <script>alert(1)</script> there")
    issue_send(issue=second)
    unsent = draft(letter, subject="Not yet")
    run_worker_until_idle()

    archive = client.get("/n/weekly/").content.decode()
    assert "First issue" in archive and "Second &lt;issue&gt;" in archive
    assert "Not yet" not in archive
    page = client.get(f"/n/weekly/{second.slug}/")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.content.decode()
    assert client.get(f"/n/weekly/{unsent.slug}/").status_code == 404

    response = client.get("/n/weekly/feed/")
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.title == "The Weekly"
    assert [entry.title for entry in feed.entries] == ["Second <issue>", "First issue"]
    assert feed.entries[1].link.endswith(f"/n/weekly/{first.slug}/")


def test_private_newsletters_have_no_public_archive_or_feed(client, db):
    make_newsletter(slug="staff", is_public=False)
    assert client.get("/n/staff/").status_code == 404
    assert client.get("/n/staff/feed/").status_code == 404


def test_markdown_is_rendered_and_sanitised():
    html = markdown_to_html(
        "# Title\n\n<img src=x onerror=alert(1)> [link](javascript:alert(1)) "
        "[ok](https://example.com)\n\n<script>steal()</script>"
    )
    assert "<h1>Title</h1>" in html
    assert "onerror" not in html and "<script" not in html and "javascript:" not in html
    assert 'href="https://example.com" rel="noopener noreferrer"' in html


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("", "body"),
        ("a" * 201, "body"),
        ("Line\r\nBcc: x@y.z", "body"),
        ("Ok", "x" * (BODY_MAX_LENGTH + 1)),
    ],
    ids=["empty-subject", "long-subject", "header-injection", "oversized-body"],
)
def test_bad_issues_are_refused(letter, subject, body):
    with pytest.raises(ValidationError):
        issue_create(newsletter=letter, subject=subject, body_markdown=body)
    assert Issue.objects.count() == 0


def test_slugs_are_unique_and_never_reserved(letter):
    assert draft(letter, subject="Feed").slug == "feed-2"
    assert draft(letter, subject="Hello").slug == "hello"
    assert draft(letter, subject="Hello").slug == "hello-2"


def test_a_scheduled_issue_is_sent_when_due_and_a_rescheduled_one_waits(
    smtp_inbox, letter, audience
):
    issue = draft(letter)
    issue_schedule(issue=issue, at=timezone.now() + timezone.timedelta(hours=1))
    issue_schedule(issue=issue, at=timezone.now() - timezone.timedelta(seconds=1))
    run_worker_until_idle()

    issue.refresh_from_db()
    assert issue.status == "sent"
    assert len(smtp_inbox.wait_for(3)) == 3


def test_an_issue_scheduled_with_a_utc_offset_is_sent_when_due(smtp_inbox, letter, audience):
    issue = draft(letter)
    # A second ago, written as Central European Summer Time: the database keeps UTC.
    moment = (timezone.now() - timezone.timedelta(seconds=1)).astimezone(
        timezone.get_fixed_timezone(120)
    )
    call_command(
        "send_issue", "weekly", issue.slug, f"--at={moment.isoformat()}", stdout=StringIO()
    )
    run_worker_until_idle()

    assert sorted(message["To"] for message in smtp_inbox.wait_for(3)) == audience
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_send_issue_command_sends_and_reports_progress(smtp_inbox, letter, audience):
    issue = draft(letter)
    out = StringIO()
    call_command("send_issue", "weekly", issue.slug, "--no-wait", stdout=out)
    assert "Sending 'First issue' to the subscribers active now." in out.getvalue()
    run_worker_until_idle()
    out = StringIO()
    call_command("send_issue", "weekly", issue.slug, stdout=out, stderr=StringIO())
    output = out.getvalue()
    assert "already sent" in output
    assert "[##############################] 100.0% 3/3 sent" in output
    assert "Sent: 3 delivered, 0 failed, 0 skipped, 0 cancelled." in output


def test_send_issue_command_emails_a_test_and_refuses_bad_input(smtp_inbox, letter, audience):
    issue = draft(letter)
    call_command(
        "send_issue", "weekly", issue.slug, "--test-to=editor@example.com", stdout=StringIO()
    )
    [test] = smtp_inbox.wait_for(1)
    assert test["Subject"] == "[Test] First issue"
    assert Delivery.objects.count() == 0
    with pytest.raises(CommandError, match="No issue"):
        call_command("send_issue", "weekly", "nope")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("send_issue", "weekly", issue.slug, "--at=next tuesday")


def test_staff_write_preview_test_and_send_from_the_admin(client, smtp_inbox, letter, audience):
    editor = make_user(
        username="editor", email="editor@example.com", is_staff=True, is_superuser=True
    )
    client.force_login(editor)
    response = client.post(
        "/admin/publishing/issue/add/",
        {"newsletter": letter.pk, "subject": "From the admin", "body_markdown": "Some *text*"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    issue = Issue.objects.get()
    assert issue.body_html == "<p>Some <em>text</em></p>"
    assert issue.created_by == editor
    change = client.get(f"/admin/publishing/issue/{issue.pk}/change/").content.decode()
    assert "&lt;em&gt;text&lt;/em&gt;" in change, "the preview, the real email in a frame"

    client.post(
        "/admin/publishing/issue/",
        {"action": "send_test_to_me", "_selected_action": [issue.pk]},
    )
    assert [m["To"] for m in smtp_inbox.wait_for(1)] == ["editor@example.com"]

    client.post(f"/admin/publishing/issue/{issue.pk}/send/", {"send": "1"})
    run_worker_until_idle()
    assert len(smtp_inbox.wait_for(4)) == 4
    index = client.get("/admin/").content.decode()
    assert "Active subscribers, last 30 days" in index
    assert "<polyline" in index
    assert "From the admin" in index, "latest sends"


def test_staff_saving_a_body_that_cannot_be_rendered_see_why(client, letter):
    editor = make_user(username="editor", is_staff=True, is_superuser=True)
    client.force_login(editor)
    response = client.post(
        "/admin/publishing/issue/add/",
        {"newsletter": letter.pk, "subject": "Lists", "body_markdown": "1. " * 500},
        follow=True,
    )

    assert response.status_code == 200
    assert "nested too deeply" in response.content.decode()
    assert not Issue.objects.exists()
