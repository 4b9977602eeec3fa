"""An issue's own preview text: what inboxes show after the subject, the email's hidden
preheader. Written on the writing page or through the API; blank, the body's first
sentence; escaped; refused with the field named when it is not one short line."""

import email
import email.policy
import html
import re

import pytest

from signalpost.api.tokens import api_token_create
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issue_preview_message
from signalpost.publishing.services import issue_create
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = '<b onmouseover="x()">Bold</b> & <script>alert(1)</script> "quoted"'
PREHEADER = re.compile(r'<div class="preview" style="([^"]*)">([^<]*)')


@pytest.fixture
def letter(db):
    letter = make_newsletter(slug="weekly", name="The Weekly")
    subscribe(email="ann@example.com", newsletter=letter, source="admin")
    return letter


@pytest.fixture
def editor(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))


@pytest.fixture
def api(client):
    token = api_token_create(name="preview-text")[1]

    def call(method, url, body):
        return getattr(client, method)(
            f"/api/v1{url}",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    return call


def preheader(html_part):
    """(style, text) of the email's hidden preheader."""
    found = PREHEADER.search(html_part)
    assert found is not None, "the HTML part has a preheader"
    return found.group(1), html.unescape(found.group(2)).strip("\u200b\xa0 ")


def test_the_preview_text_travels_hidden_in_the_html_part_and_nowhere_else(letter, smtp_inbox):
    issue = issue_create(
        newsletter=letter,
        subject="Spring",
        body_markdown="The first sentence. The second.",
        preview_text=f"  {HOSTILE}  ",
    )
    issue_send_prepared(issue=issue)
    run_worker_until_idle()

    [envelope] = smtp_inbox.envelopes
    raw = envelope.original_content
    message = email.message_from_bytes(raw, policy=email.policy.strict)
    html_part = message.get_body(preferencelist=("html",)).get_content()
    style, shown = preheader(html_part)
    assert "display: none" in style
    assert shown == HOSTILE, "escaped in the HTML, read back as written"
    assert "<script>" not in html_part and "&lt;script&gt;" in html_part
    assert "The first sentence" not in shown
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "Bold" not in head, "not in the subject nor any header"
    assert message["Subject"] == "Spring"
    text_part = message.get_body(preferencelist=("plain",)).get_content()
    assert "Bold" not in text_part


def test_a_blank_preview_text_is_the_bodys_first_sentence(letter):
    issue = issue_create(
        newsletter=letter,
        subject="One",
        body_markdown="First one here. Then more.",
        preview_text=" ",
    )
    assert issue.preview_text == ""
    message = issue_preview_message(issue=issue, subject="One", body_html=issue.body_html)
    assert preheader(message.html)[1] == "First one here."


@pytest.mark.parametrize(
    ("preview_text", "says"),
    [
        ("x" * 151, "at most 150 characters"),
        ("Innocent\r\nBcc: everyone@example.com", "one line"),
        ("Line\nbreak", "one line"),
        ("nul\x00", "one line"),
        ("tab\there", "one line"),
        ("separator\u2028here", "one line"),
    ],
)
def test_the_api_refuses_a_preview_text_that_is_not_one_short_line(letter, api, preview_text, says):
    body = {"subject": "S", "body_markdown": "B.", "preview_text": preview_text}
    created = api("post", "/newsletters/weekly/issues", body)
    assert created.status_code == 400
    [error] = created.json()["errors"]
    assert error["field"] == "preview_text"
    assert says in error["message"]
    assert not Issue.objects.exists(), "nothing half-written"

    issue = issue_create(newsletter=letter, subject="S", body_markdown="B.", preview_text="Kept")
    changed = api("patch", f"/issues/{issue.pk}", {"preview_text": preview_text, "subject": "New"})
    assert changed.status_code == 400
    assert changed.json()["errors"][0]["field"] == "preview_text"
    issue.refresh_from_db()
    assert (issue.subject, issue.preview_text) == ("S", "Kept"), "nothing half-written"


def test_the_api_creates_reads_and_changes_the_preview_text(letter, api):
    body = {"subject": "S", "body_markdown": "B.", "preview_text": "Inside: <b>news</b>"}
    created = api("post", "/newsletters/weekly/issues", body)
    assert created.status_code == 201
    issue_id = created.json()["id"]
    assert created.json()["preview_text"] == "Inside: <b>news</b>"

    changed = api("patch", f"/issues/{issue_id}", {"preview_text": "Changed"})
    assert changed.status_code == 200
    assert (changed.json()["subject"], changed.json()["preview_text"]) == ("S", "Changed")
    assert api("get", f"/issues/{issue_id}", None).json()["preview_text"] == "Changed"
    kept = api("patch", f"/issues/{issue_id}", {"subject": "T"})
    assert kept.json()["preview_text"] == "Changed", "a field left out is kept"
    cleared = api("patch", f"/issues/{issue_id}", {"preview_text": ""})
    assert cleared.json()["preview_text"] == ""


def test_the_api_refuses_to_change_an_issue_once_it_is_sending(letter, api):
    issue = issue_create(newsletter=letter, subject="S", body_markdown="B.")
    issue_send_prepared(issue=issue)
    changed = api("patch", f"/issues/{issue.pk}", {"preview_text": "Too late"})
    assert changed.status_code == 409
    assert changed.json()["errors"][0]["field"] == "status"
    assert Issue.objects.get(pk=issue.pk).preview_text == ""


def test_the_openapi_document_describes_the_preview_text(client):
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("IssueIn", "IssueUpdateIn"):
        field = schemas[name]["properties"]["preview_text"]
        assert field.get("maxLength") == 150 or any(
            option.get("maxLength") == 150 for option in field.get("anyOf", [])
        ), field
        assert "preheader" in field["description"]
    assert "preview_text" in schemas["IssueOut"]["required"]


def test_the_writing_page_saves_the_preview_text_and_previews_it(letter, client, editor):
    issue = issue_create(newsletter=letter, subject="S", body_markdown="First here. More.")
    write = f"/admin/publishing/issue/{issue.pk}/write/"
    assert "First here." in client.get(write).content.decode(), "the inbox line: first sentence"

    answer = client.post(
        f"/admin/publishing/issue/{issue.pk}/preview/",
        {"subject": "S", "body_markdown": "First here.", "preview_text": HOSTILE},
    )
    assert answer.status_code == 200
    assert answer.json()["preview_text"] == HOSTILE
    assert preheader(answer.json()["html"])[1] == HOSTILE
    assert Issue.objects.get(pk=issue.pk).preview_text == "", "previewing saves nothing"

    saved = client.post(write, {"subject": "S", "body_markdown": "B.", "preview_text": "Mine"})
    assert saved.status_code == 302
    assert Issue.objects.get(pk=issue.pk).preview_text == "Mine"
    assert 'value="Mine"' in client.get(write).content.decode()


@pytest.mark.parametrize("preview_text", ["x" * 151, "Two\r\nlines", "nul\x00"])
def test_the_writing_page_names_a_refused_preview_text(letter, client, editor, preview_text):
    issue = issue_create(newsletter=letter, subject="S", body_markdown="B.", preview_text="Kept")
    answer = client.post(
        f"/admin/publishing/issue/{issue.pk}/preview/",
        {"subject": "S", "body_markdown": "B.", "preview_text": preview_text},
    )
    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["preview_text"]
    saved = client.post(
        f"/admin/publishing/issue/{issue.pk}/write/",
        {"subject": "New", "body_markdown": "B.", "preview_text": preview_text},
    )
    assert saved.status_code == 200
    assert 'id="preview_text-errors"' in saved.content.decode()
    issue.refresh_from_db()
    assert (issue.subject, issue.preview_text) == ("S", "Kept"), "nothing half-written"


def test_the_issue_form_in_the_admin_keeps_the_preview_text(letter, client, editor):
    issue = issue_create(newsletter=letter, subject="S", body_markdown="B.")
    answer = client.post(
        f"/admin/publishing/issue/{issue.pk}/change/",
        {
            "subject": "S",
            "body_markdown": "B.",
            "preview_text": "From the form",
            "scheduled_at": "",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert Issue.objects.get(pk=issue.pk).preview_text == "From the form"
