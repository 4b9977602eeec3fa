"""Email templates edited in the admin: checked before saving, versioned, revertible, and
preferred over the files when mail is sent."""

import pytest
from django.core.exceptions import ValidationError

from signalpost.newsletters.mailtemplates import BODY_MAX_LENGTH, template_check
from signalpost.newsletters.models import EmailTemplate, EmailTemplateVersion
from signalpost.newsletters.services import email_template_save, subscribe
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATES = "/admin/newsletters/emailtemplate/"
WELCOME_HTML = (
    '{% extends "emails/base.html" %}{% block body %}'
    "<h1>Hi {{ profile.name }}, welcome aboard {{ newsletter.name }}!</h1>{% endblock %}"
)
WELCOME_TEXT = "Hi {{ profile.name }}, welcome aboard!\nLeave: {{ unsubscribe_url }}\n"


@pytest.fixture
def staff(client):
    user = make_user(is_staff=True, is_superuser=True, username="editor")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def weekly():
    return make_newsletter(slug="weekly", name="The Weekly")


def save(client, *, newsletter, name, body):
    return client.post(
        TEMPLATES + "add/",
        {"newsletter": newsletter.pk if newsletter else "", "name": name, "body": body},
    )


def body_errors(response):
    return " ".join(response.context["adminform"].form.errors.get("body", []))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{% if %}", "Template syntax error"),
        ("{{ unsubscribe_url|nosuchfilter }}", "Invalid filter"),
        ("{% load static %}{{ unsubscribe_url }}", "not a registered tag library"),
        ('{% include "/etc/passwd" %}{{ unsubscribe_url }}', "shipped email templates"),
        ('{% extends "../settings.py" %}', "relative path"),
        ('{% extends "signalpost/base.html" %}', "shipped email templates"),
        ("{% include name %}{{ unsubscribe_url }}", "shipped email templates"),
        ("{% debug %}{{ unsubscribe_url }}", "debug"),
        ("{% for a in b %}{% for c in a %}{% endfor %}{% endfor %}{{ unsubscribe_url }}", "inside"),
        ('{% for c in "xxxxxxxx" %}{% endfor %}{{ unsubscribe_url }}', "literal"),
        ('{{ unsubscribe_url|center:"999999999" }}', "not allowed"),
        ("{% lorem 99999999 w %}{{ unsubscribe_url }}", "not allowed"),
        ('{% extends "emails/missing.html" %}', "does not render"),
        ("Welcome {{ profile.name }}!", "unsubscribe link"),
        ("x" * (BODY_MAX_LENGTH + 1), "at most 100,000 characters"),
        ("{{ unsubscribe_url }}\x00", "Null characters"),
    ],
    ids=[
        "syntax", "filter", "load", "include-file", "extends-relative", "extends-site",
        "include-variable", "debug", "nested-loops", "literal-loop", "padding", "lorem",
        "missing-base", "no-unsubscribe", "oversized", "nul",
    ],
)  # fmt: skip
def test_a_template_that_cannot_be_sent_is_refused_on_the_body_field(staff, weekly, body, error):
    response = save(staff, newsletter=weekly, name="welcome.txt", body=body)

    assert response.status_code == 200
    assert error in body_errors(response)
    assert not EmailTemplate.objects.exists()


def test_subjects_and_the_preference_link_need_no_unsubscribe_link():
    template_check(name="welcome_subject.txt", body="Welcome, {{ profile.name }}", newsletter=None)
    template_check(name="preferences_link.txt", body="{{ preferences_url }}", newsletter=None)
    with pytest.raises(ValidationError):
        template_check(name="issue.txt", body="{{ body_text }}", newsletter=None)


def test_a_saved_template_is_used_for_the_welcome_email_instead_of_the_file(
    staff, weekly, smtp_inbox
):
    assert save(staff, newsletter=weekly, name="welcome.txt", body=WELCOME_TEXT).status_code == 302
    assert save(staff, newsletter=weekly, name="welcome.html", body=WELCOME_HTML).status_code == 302

    subscribe(email="ann@example.com", name="Ann", newsletter=weekly, source="form")
    run_worker_until_idle()

    [welcome] = smtp_inbox.wait_for(1)
    text = welcome.get_body(("plain",)).get_content()
    html = welcome.get_body(("html",)).get_content()
    assert text.startswith("Hi Ann, welcome aboard!")
    assert "/unsubscribe/" in text
    assert "welcome aboard The Weekly!" in html


def test_a_template_for_every_newsletter_applies_where_none_has_its_own(weekly, smtp_inbox):
    other = make_newsletter(slug="other", name="The Other")
    email_template_save(
        newsletter=None, name="welcome.txt", body="Everyone: {{ unsubscribe_url }}", user=None
    )
    email_template_save(
        newsletter=weekly, name="welcome.txt", body="Weekly: {{ unsubscribe_url }}", user=None
    )

    subscribe(email="ann@example.com", newsletter=weekly, source="form")
    subscribe(email="bob@example.com", newsletter=other, source="form")
    run_worker_until_idle()

    messages = {m["To"]: m.get_body(("plain",)).get_content() for m in smtp_inbox.wait_for(2)}
    assert messages["ann@example.com"].startswith("Weekly: https://")
    assert messages["bob@example.com"].startswith("Everyone: https://")


def test_a_saved_issue_template_is_used_for_every_recipient(weekly, smtp_inbox):
    body = (
        "{{ issue.subject }} for {{ profile.email }}\n{{ body_text }}\nBye: {{ unsubscribe_url }}\n"
    )
    email_template_save(newsletter=weekly, name="issue.txt", body=body, user=None)
    for name in ["ann", "bob"]:
        subscribe(email=f"{name}@example.com", newsletter=weekly, source="admin")
    issue_send(issue=issue_create(newsletter=weekly, subject="Big news", body_markdown="It *is*."))
    run_worker_until_idle()

    messages = smtp_inbox.wait_for(2)
    assert len(messages) == 2
    for message in messages:
        text = message.get_body(("plain",)).get_content()
        assert text.startswith(f"Big news for {message['To']}\r\nIt is.")
        assert "SIGNALPOST-PLACEHOLDER" not in text, "personalised"


def test_every_save_is_a_version_with_who_and_when_and_can_be_reverted(staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    template = EmailTemplate.objects.get()
    change = f"{TEMPLATES}{template.pk}/change/"
    response = staff.post(change, {"body": "Two {{ unsubscribe_url }}"})
    assert response.status_code == 302

    page = staff.get(change).content.decode()
    first = template.versions.order_by("created_at", "id").first()
    assert page.count("editor") >= 2 and "Revert to this" in page
    assert "Two https://news.example.com/unsubscribe/SAMPLE" in page  # the preview
    revert = f"{TEMPLATES}{template.pk}/versions/{first.pk}/revert/"
    assert "Yes, revert" in staff.get(revert).content.decode()
    staff.post(revert)

    template.refresh_from_db()
    assert template.body == "One {{ unsubscribe_url }}"
    assert [v.body[:3] for v in template.versions.all()] == ["One", "Two", "One"]
    assert template.versions.first().note.startswith("reverted to the version of")
    assert template.versions.first().created_by.username == "editor"


def test_a_bad_edit_keeps_the_active_version(staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    template = EmailTemplate.objects.get()

    response = staff.post(f"{TEMPLATES}{template.pk}/change/", {"body": "{% if %}"})

    assert response.status_code == 200 and "syntax" in body_errors(response)
    template.refresh_from_db()
    assert template.body == "One {{ unsubscribe_url }}"
    assert EmailTemplateVersion.objects.count() == 1


def test_deleting_a_template_goes_back_to_the_file(staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    template = EmailTemplate.objects.get()

    staff.post(f"{TEMPLATES}{template.pk}/delete/", {"post": "yes"})

    assert not EmailTemplate.objects.exists() and not EmailTemplateVersion.objects.exists()


def test_the_add_page_starts_from_the_file_of_the_name_asked_for(staff):
    page = staff.get(TEMPLATES + "add/?name=welcome.txt").content.decode()
    assert "{{ unsubscribe_url }}" in page
    assert staff.get(TEMPLATES + "add/?name=../../etc/passwd").status_code == 200


def test_one_template_per_name_and_newsletter(staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    response = save(staff, newsletter=weekly, name="welcome.txt", body="Two {{ unsubscribe_url }}")
    assert response.status_code == 200
    save(staff, newsletter=None, name="welcome.txt", body="All {{ unsubscribe_url }}")
    response = save(staff, newsletter=None, name="welcome.txt", body="All2 {{ unsubscribe_url }}")
    assert response.status_code == 200
    assert EmailTemplate.objects.count() == 2


def test_reverting_needs_change_permission_and_known_ids(client, staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    template = EmailTemplate.objects.get()
    version = template.versions.get()
    assert staff.get(f"{TEMPLATES}{template.pk}/versions/999/revert/").status_code == 404
    assert staff.get(f"{TEMPLATES}abc/versions/{version.pk}/revert/").status_code == 404
    client.force_login(make_user(is_staff=True))
    assert client.post(f"{TEMPLATES}{template.pk}/versions/{version.pk}/revert/").status_code == 403


def test_a_template_cannot_put_markup_into_the_admin_page(staff, weekly):
    body = "<script>alert(1)</script> {{ unsubscribe_url }}"
    save(staff, newsletter=weekly, name="welcome.txt", body=body)
    save(staff, newsletter=weekly, name="welcome.html", body=body)

    for template in EmailTemplate.objects.all():
        page = staff.get(f"{TEMPLATES}{template.pk}/change/").content.decode()
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_body_as_typed_is_previewed_without_being_saved(staff, weekly):
    response = staff.post(
        TEMPLATES + "preview/",
        {
            "newsletter": weekly.pk,
            "name": "welcome.txt",
            "body": "Hey {{ profile.name }} {{ unsubscribe_url }}",
        },
    )

    assert response.status_code == 200
    assert "Hey Sam Sample https://news.example.com/unsubscribe/SAMPLE" in response.content.decode()
    assert not EmailTemplate.objects.exists()


def test_the_preview_of_an_edit_keeps_the_saved_template_and_says_what_is_wrong(staff, weekly):
    save(staff, newsletter=weekly, name="welcome.txt", body="One {{ unsubscribe_url }}")
    template = EmailTemplate.objects.get()

    response = staff.post(f"{TEMPLATES}preview/?template={template.pk}", {"body": "{% if %}"})

    assert response.status_code == 400
    assert "Template syntax error" in response.content.decode()
    template.refresh_from_db()
    assert template.body == "One {{ unsubscribe_url }}"


@pytest.mark.parametrize(
    ("query", "data", "status"),
    [
        ("", {"name": "nope.txt", "body": "x"}, 400),
        ("", {"name": "welcome.txt", "newsletter": "abc", "body": "x"}, 404),
        ("?template=abc", {"body": "x"}, 404),
        ("?template=999", {"body": "x"}, 404),
        ("", {}, 400),
    ],
    ids=["unknown-name", "bad-newsletter", "bad-template", "missing-template", "empty"],
)
def test_a_malformed_preview_request_is_refused_without_an_error_page(staff, query, data, status):
    assert staff.post(f"{TEMPLATES}preview/{query}", data).status_code == status


def test_previewing_needs_permission_and_a_post(client, staff):
    assert staff.get(TEMPLATES + "preview/").status_code == 405
    client.force_login(make_user(is_staff=True))
    assert client.post(TEMPLATES + "preview/", {"name": "welcome.txt"}).status_code == 403
