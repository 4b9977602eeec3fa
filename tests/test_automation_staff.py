"""Writing automations in the staff pages: settings and steps as rows, the API's one
validation with its refusals on the row they name, a preview and a test send of each
email step, and the buttons that start, pause and delete one."""

import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from signalpost.api.tokens import api_token_create
from signalpost.automations.admin import FIELDS_MAX
from signalpost.automations.models import Automation, Step
from signalpost.automations.services import automation_activate, automation_create
from signalpost.newsletters.services import subscribe
from signalpost.publishing.services import BODY_MAX_LENGTH, TEST_RECIPIENTS_MAX
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db

AUTOMATIONS = "/admin/automations/automation/"
HELLO = {"kind": "email", "subject": "Welcome aboard", "body_markdown": "Hello **you**."}
DAY = {"kind": "wait", "wait_days": "1"}
HELLO_STEP = {"kind": "email", "config": {"subject": "Hi", "body_markdown": "Hello."}}


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly")


@pytest.fixture
def editor(client):
    user = make_user(is_staff=True, is_superuser=True, email="editor@example.com")
    client.force_login(user)
    return user


def form_data(newsletter, rows, **settings):
    """What the add page posts: the settings and one row per step (position: its place)."""
    data = {
        "name": "Onboarding",
        "newsletter": str(newsletter.pk),
        "trigger": "subscribed",
        "trigger_value": "",
        "exit_tag": "",
        "steps-TOTAL_FORMS": str(len(rows)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "100",
        **settings,
    }
    for number, row in enumerate(rows):
        data.update({f"steps-{number}-{name}": value for name, value in row.items()})
        data.setdefault(f"steps-{number}-ORDER", str(number))
    return data


def stored(automation):
    """An automation as stored: its settings and its steps' kinds and configs."""
    automation.refresh_from_db()
    return {
        "name": automation.name,
        "trigger": automation.trigger,
        "trigger_value": automation.trigger_value,
        "trigger_sources": automation.trigger_sources,
        "exit_tag": automation.exit_tag,
        "status": automation.status,
        "steps": [
            (step.kind, step.config, step.issue.body_html if step.issue else None)
            for step in automation.steps.select_related("issue")
        ],
    }


def written():
    return Automation.objects.filter(is_welcome=False)


def post_form(client, path, data):
    """Post ``data`` as a browser posts the page's form (urlencoded)."""
    return client.post(
        path, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded"
    )


def add(client, newsletter, rows, **settings):
    return post_form(client, f"{AUTOMATIONS}add/", form_data(newsletter, rows, **settings))


def row_errors(response, number):
    """The errors shown on the ``number``th row of the page (counting from 0)."""
    return " ".join(response.context["steps"][number]["form"].non_field_errors())


def shown_errors(response):
    """Every error the page shows (for a failing test's message)."""
    context = response.context
    rows = context["rows"]
    return [
        context["form"].errors,
        rows.refusals,
        rows.non_form_errors(),
        {number: form.errors for number, form in enumerate(rows.forms) if form.errors},
    ]


def field_errors(response, field):
    return " ".join(response.context["form"].errors.get(field, []))


# Writing one.


def test_an_automation_written_in_the_form_is_stored_as_the_api_stores_it(client, editor, weekly):
    rows = [
        {**HELLO, "preview_text": "Glad you came"},
        {"kind": "wait", "wait_days": "2", "wait_hours": "3", "wait_minutes": "4"},
        {"kind": "tag_add", "tag": "onboarded"},
        {"kind": "set_attribute", "attribute_key": "plan", "attribute_value": "30"},
        {"kind": "webhook", "webhook_event": "onboarded"},
        {"kind": "branch", "branch_if": "clicked", "branch_value": "0", "branch_goto": "9"},
        {"kind": "wait", "wait_weekday": "0", "wait_time": "09:00"},
        {"kind": "branch", "branch_if": "has_tag", "branch_value": "vip", "branch_goto": "9"},
        {"kind": "email", "subject": "Still there?", "body_markdown": "A [link](https://e.org)."},
    ]
    response = add(
        client, weekly, rows, trigger_sources=["form", "api"], exit_tag="bought", name="On board"
    )
    assert response.status_code == 302, response.context and response.context["form"].errors
    from_form = written().get()

    token = api_token_create(name="tests")[1]
    steps = [
        {
            "kind": "email",
            "config": {
                "subject": "Welcome aboard",
                "body_markdown": "Hello **you**.",
                "preview_text": "Glad you came",
            },
        },
        {"kind": "wait", "config": {"seconds": 2 * 86400 + 3 * 3600 + 4 * 60}},
        {"kind": "tag_add", "config": {"tag": "onboarded"}},
        {"kind": "set_attribute", "config": {"key": "plan", "value": 30}},
        {"kind": "webhook", "config": {"event": "onboarded"}},
        {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 9}},
        {"kind": "wait", "config": {"weekday": 0, "time": "09:00"}},
        {"kind": "branch", "config": {"if": {"has_tag": "vip"}, "goto": 9}},
        {
            "kind": "email",
            "config": {"subject": "Still there?", "body_markdown": "A [link](https://e.org)."},
        },
    ]
    answer = Client().post(
        "/api/v1/automations",
        data=json.dumps(
            {
                "newsletter": "weekly",
                "name": "On board",
                "trigger": "subscribed",
                "trigger_sources": ["api", "form"],
                "exit_tag": "bought",
                "steps": steps,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.status_code == 201, answer.content
    from_api = Automation.objects.get(pk=answer.json()["id"])
    assert stored(from_form) == stored(from_api)
    assert stored(from_form)["steps"][0][2] == "<p>Hello <strong>you</strong>.</p>"


def test_rows_are_ordered_by_their_position_and_deleted_or_empty_rows_left_out(
    client, editor, weekly
):
    rows = [
        {**HELLO, "ORDER": "2"},
        {"kind": "tag_add", "tag": "gone", "DELETE": "on", "ORDER": "1"},
        {"kind": "wait", "wait_hours": "5", "ORDER": "1"},
        {"kind": "tag_add", "tag": "first", "ORDER": "0"},
        {"kind": "", "ORDER": ""},
    ]
    assert add(client, weekly, rows).status_code == 302
    steps = stored(written().get())["steps"]
    assert [(kind, config) for kind, config, _ in steps] == [
        ("tag_add", {"tag": "first"}),
        ("wait", {"seconds": 5 * 3600}),
        (
            "email",
            {"subject": "Welcome aboard", "body_markdown": "Hello **you**.", "preview_text": ""},
        ),
    ]


def page_as_posted(response):
    """The data a browser would post back from the page as shown (nothing changed)."""
    data = {}
    for form in [
        response.context["form"],
        response.context["rows"].management_form,
        *response.context["rows"].forms,
    ]:
        for name in form.fields:
            value = form[name].value()
            if value is False:
                continue  # an unticked box is not sent; an empty field is, as ""
            if value is None or value is True:
                value = "" if value is None else "on"
            data[form.add_prefix(name)] = value
    return data


def test_an_automation_saved_back_unchanged_stays_exactly_as_it_was(client, editor, weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Everything",
        trigger="tagged",
        trigger_value="trial",
        exit_tag="bought",
        steps=[
            {
                "kind": "email",
                "config": {"subject": "S", "body_markdown": "B", "preview_text": "P"},
            },
            {"kind": "wait", "config": {"seconds": 90061}},
            {"kind": "set_attribute", "config": {"key": "plan", "value": "trial"}},
            {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 5}},
            {"kind": "wait", "config": {"weekday": 6, "time": "23:59"}},
            {"kind": "welcome", "config": {}},
        ],
    )
    before = stored(automation)
    page = client.get(f"{AUTOMATIONS}{automation.pk}/change/")
    assert page.status_code == 200
    response = post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", page_as_posted(page))
    assert response.status_code == 302, shown_errors(response)
    assert stored(automation) == before


def test_an_edit_through_the_page_changes_the_steps(client, editor, weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Short",
        trigger="subscribed",
        steps=[{"kind": "tag_add", "config": {"tag": "a"}}],
    )
    data = page_as_posted(client.get(f"{AUTOMATIONS}{automation.pk}/change/"))
    data.update(
        {
            "name": "Longer",
            "steps-1-kind": "wait",
            "steps-1-wait_minutes": "10",
            "steps-2-kind": "email",
            "steps-2-subject": "Hi",
            "steps-2-body_markdown": "Yo",
        }
    )
    assert post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", data).status_code == 302
    after = stored(automation)
    assert after["name"] == "Longer"
    assert [kind for kind, _, _ in after["steps"]] == ["tag_add", "wait", "email"]


# Refusals: the API's validation, shown on the row or field it names, nothing lost.

HOSTILE_NAME = '<script>alert("name")</script>'
REFUSED_ROWS = {
    "unknown kind": ([{"kind": "fly", "tag": "kept"}], 0, "the kind is one of"),
    "no kind": ([{"kind": "", "subject": "Forgot the kind"}], 0, "the kind is one of"),
    "wait of zero": ([HELLO, {"kind": "wait", "wait_seconds": "0"}, HELLO], 1, "a wait is 1 to"),
    "wait not a number": ([{"kind": "wait", "wait_days": "two"}], 0, "seconds is a whole number"),
    "wait of nothing": ([{"kind": "wait"}], 0, "a wait needs seconds, or a weekday"),
    "wait both ways": (
        [{"kind": "wait", "wait_days": "1", "wait_weekday": "0", "wait_time": "09:00"}],
        0,
        "either seconds or a weekday",
    ),
    "wait past a year": ([{"kind": "wait", "wait_days": "400"}], 0, "a wait is 1 to"),
    "bad time": ([{"kind": "wait", "wait_weekday": "1", "wait_time": "25:00"}], 0, "HH:MM"),
    "emails without a wait": (
        [HELLO, {"kind": "tag_add", "tag": "x"}, HELLO],
        2,
        "a wait must come between",
    ),
    "branch backwards": (
        [
            HELLO,
            DAY,
            {"kind": "branch", "branch_if": "clicked", "branch_value": "0", "branch_goto": "1"},
        ],
        2,
        "only jumps forward",
    ),
    "branch past the end": (
        [{"kind": "branch", "branch_if": "has_tag", "branch_value": "vip", "branch_goto": "7"}],
        0,
        "goto is at most 1",
    ),
    "branch on a wait": (
        [DAY, {"kind": "branch", "branch_if": "clicked", "branch_value": "0", "branch_goto": "2"}],
        1,
        "earlier email step",
    ),
    "branch jumping over a wait": (
        [
            HELLO,
            {"kind": "branch", "branch_if": "has_tag", "branch_value": "x", "branch_goto": "3"},
            DAY,
            HELLO,
        ],
        3,
        "a wait must come between",
    ),
    "unrenderable markdown": ([{**HELLO, "body_markdown": "1. " * 500}], 0, "nested too deeply"),
    "oversized body": ([{**HELLO, "body_markdown": "x" * (BODY_MAX_LENGTH + 1)}], 0, "at most"),
    "oversized subject": ([{**HELLO, "subject": "S" * 1000}], 0, "A subject has at most"),
    "oversized tag": ([{"kind": "tag_add", "tag": "t" * 500}], 0, "at most"),
    "oversized event": ([{"kind": "webhook", "webhook_event": "e" * 101}], 0, "at most 100"),
    "subject on two lines": ([{**HELLO, "subject": "A\nB"}], 0, "one line"),
    "email without subject": ([{"kind": "email", "body_markdown": "Hi"}], 0, "subject"),
    "email without body": ([{"kind": "email", "subject": "Hi"}], 0, "needs a body"),
    "tag missing": ([{"kind": "tag_remove"}], 0, "tag"),
    "attribute key missing": ([{"kind": "set_attribute", "attribute_value": "v"}], 0, ""),
    "branch without condition": ([{"kind": "branch", "branch_goto": "1"}], 0, "if is"),
}


@pytest.mark.parametrize(
    ("rows", "row", "message"), list(REFUSED_ROWS.values()), ids=list(REFUSED_ROWS)
)
def test_a_refused_step_is_shown_on_its_row_and_nothing_typed_is_lost(
    client, editor, weekly, rows, row, message
):
    response = add(client, weekly, rows, name=HOSTILE_NAME)
    assert response.status_code == 200
    assert message in row_errors(response, row)
    assert row_errors(response, row), shown_errors(response)
    assert not written().exists(), "nothing half-written"
    page = response.content.decode()
    assert 'class="errornote"' in page
    assert HOSTILE_NAME not in page and "&lt;script&gt;alert(&quot;name&quot;)" in page
    for number, typed in enumerate(rows):
        for name, value in typed.items():
            assert response.context["rows"].forms[number][name].value() == value
            if len(value) < 200 and name != "kind":
                shown = value.replace("\n", "&#10;") if False else value
                assert shown.split("\n")[0] in page


def test_the_refusal_follows_a_row_moved_by_its_position(client, editor, weekly):
    rows = [
        {**HELLO, "subject": "Second", "ORDER": "2"},
        {**HELLO, "subject": "First", "ORDER": "0"},
        {"kind": "tag_add", "tag": "between", "ORDER": "1"},
    ]
    response = add(client, weekly, rows)
    # Saved order: First (0), between (1), Second (2): the email at 2 is the one refused.
    assert "step 0" in row_errors(response, 0) and "a wait must come between" in row_errors(
        response, 0
    )
    assert row_errors(response, 1) == row_errors(response, 2) == ""


REFUSED_SETTINGS = {
    "no name": ({"name": "   "}, "name", "needs a name"),
    "long name": ({"name": "n" * 201}, "name", "at most 200"),
    "control characters in the name": ({"name": "a\x07b"}, "name", "control characters"),
    "unknown trigger": ({"trigger": "whenever"}, "trigger", "A trigger is one of"),
    "no trigger": ({"trigger": ""}, "trigger", "A trigger is one of"),
    "tag trigger without tag": ({"trigger": "tagged"}, "trigger_value", "Name the tag"),
    "value on a subscribe trigger": ({"trigger_value": "x"}, "trigger_value", "takes no value"),
    "unknown source": ({"trigger_sources": ["pigeon"]}, "trigger_sources", "Sources are"),
    "bad exit tag": ({"exit_tag": "a,b"}, "exit_tag", ""),
    "nul in the name": ({"name": "a\x00b"}, "name", "Null characters"),
}


@pytest.mark.parametrize(
    ("fields", "field", "message"), list(REFUSED_SETTINGS.values()), ids=list(REFUSED_SETTINGS)
)
def test_a_refused_setting_is_shown_on_its_field_and_the_steps_are_kept(
    client, editor, weekly, fields, field, message
):
    response = add(client, weekly, [HELLO, DAY], **fields)
    assert response.status_code == 200
    assert field_errors(response, field), shown_errors(response)
    assert message in field_errors(response, field)
    assert not written().exists()
    assert response.context["rows"].forms[0]["body_markdown"].value() == "Hello **you**."
    for name, typed in fields.items():
        assert response.context["form"][name].value() == typed  # shown back as typed


def test_too_many_steps_are_refused_above_the_rows_with_every_row_kept(client, editor, weekly):
    rows = [{"kind": "tag_add", "tag": f"t{number}"} for number in range(51)]
    response = add(client, weekly, rows)
    assert "At most 50 steps." in response.context["rows"].refusals
    assert response.context["rows"].forms[50]["tag"].value() == "t50"
    assert not written().exists()


def test_an_unknown_newsletter_is_refused_on_its_field(client, editor, weekly):
    data = {**form_data(weekly, [HELLO]), "newsletter": "999999"}
    response = post_form(client, f"{AUTOMATIONS}add/", data)
    assert response.status_code == 200
    assert field_errors(response, "newsletter")
    assert not written().exists()


def test_hostile_text_in_names_and_bodies_is_shown_escaped(client, editor, weekly):
    body = 'Hi <script>alert("body")</script> <img src=x onerror=alert(1)>'
    rows = [{**HELLO, "subject": '<b onmouseover="x">S</b>', "body_markdown": body}]
    assert add(client, weekly, rows, name=HOSTILE_NAME).status_code == 302
    automation = written().get()
    for path in ["", f"{automation.pk}/change/", f"{automation.pk}/steps/0/preview/"]:
        page = client.get(f"{AUTOMATIONS}{path}").content.decode()
        assert "<script>alert" not in page, path
        assert '<b onmouseover="x">' not in page, path
        assert "<img src=x onerror" not in page, path
    assert "<script" not in automation.steps.get().issue.body_html


# Who may write.


def test_people_who_are_not_staff_are_sent_to_log_in_and_nothing_is_written(client, weekly):
    client.force_login(make_user(is_staff=False))
    automation = automation_create(
        newsletter=weekly, name="Kept", trigger="subscribed", steps=[HELLO_STEP]
    )
    for path in ["add/", "change/", "activate/", "pause/", "steps/0/test/", "steps/0/preview/"]:
        if path != "add/":
            path = f"{automation.pk}/{path}"
        data = {**form_data(weekly, [HELLO]), "to_emails": "x@example.com"}
        response = client.post(f"{AUTOMATIONS}{path}", data)
        assert response.status_code == 302 and "/login/" in response["Location"], path
        if "preview" in path:
            response = client.get(f"{AUTOMATIONS}{path}")
            assert response.status_code == 302 and "/login/" in response["Location"]
    assert list(written()) == [automation] and stored(automation)["status"] == "draft"


def test_staff_who_may_only_view_see_the_page_without_a_save_and_cannot_post(client, weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Seen",
        trigger="subscribed",
        steps=[{"kind": "tag_add", "config": {"tag": "a"}}],
    )
    user = make_user(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_automation"))
    client.force_login(user)
    page = client.get(f"{AUTOMATIONS}{automation.pk}/change/")
    assert page.status_code == 200
    assert 'value="Save"' not in page.content.decode() and "Activate" not in page.content.decode()
    assert client.get(f"{AUTOMATIONS}add/").status_code == 403
    data = form_data(weekly, [{"kind": "tag_add", "tag": "b"}], name="Changed")
    assert post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", data).status_code == 403
    assert client.post(f"{AUTOMATIONS}{automation.pk}/activate/").status_code == 403
    assert client.post(f"{AUTOMATIONS}{automation.pk}/steps/0/test/").status_code == 403
    assert stored(automation)["name"] == "Seen"


def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(weekly):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user(is_staff=True, is_superuser=True))
    response = browser.post(f"{AUTOMATIONS}add/", form_data(weekly, [HELLO]))
    assert response.status_code == 403
    assert not written().exists()
    automation = automation_create(
        newsletter=weekly,
        name="Held",
        trigger="subscribed",
        steps=[{"kind": "tag_add", "config": {"tag": "a"}}],
    )
    assert browser.post(f"{AUTOMATIONS}{automation.pk}/activate/").status_code == 403
    assert stored(automation)["status"] == "draft"


def test_the_longest_automation_saves_from_its_page_with_every_field_posted(client, editor, weekly):
    steps = []
    for number in range(25):
        steps += [
            {"kind": "tag_add", "config": {"tag": f"t{number}"}},
            {"kind": "wait", "config": {"seconds": 60}},
        ]
    automation = automation_create(
        newsletter=weekly, name="Long", trigger="subscribed", steps=steps
    )
    data = page_as_posted(client.get(f"{AUTOMATIONS}{automation.pk}/change/"))
    assert len(data) > 1000  # far beyond the usual limit of form fields
    response = post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", data)
    assert response.status_code == 302, shown_errors(response)
    assert len(stored(automation)["steps"]) == 50


def test_a_form_with_more_fields_than_any_page_has_is_refused(client, editor, weekly):
    data = {f"f{number}": "x" for number in range(FIELDS_MAX + 1)}
    response = post_form(client, f"{AUTOMATIONS}add/", data)
    assert response.status_code == 400
    assert f"more than {FIELDS_MAX:,} fields" in response.content.decode()
    response = post_form(client, "/admin/newsletters/segment/add/", data)
    assert "more than 100 fields" in response.content.decode()


# Preview and test send of an email step.


@pytest.fixture
def sequence(weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Onboarding",
        trigger="subscribed",
        steps=[
            {
                "kind": "email",
                "config": {
                    "subject": "Day one",
                    "preview_text": "Start here",
                    "body_markdown": "Hello **there**, [read](https://e.org/a).",
                },
            },
            {"kind": "wait", "config": {"seconds": 86400}},
        ],
    )
    return automation


def test_the_edit_page_links_each_saved_email_step_to_its_preview_and_test(
    client, editor, sequence
):
    page = client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    assert f"{AUTOMATIONS}{sequence.pk}/steps/0/preview/" in page
    assert f"{AUTOMATIONS}{sequence.pk}/steps/0/test/" in page
    assert f"{AUTOMATIONS}{sequence.pk}/steps/1/preview/" not in page


def test_the_preview_shows_the_rendered_markdown_in_the_newsletters_email(client, editor, sequence):
    response = client.get(f"{AUTOMATIONS}{sequence.pk}/steps/0/preview/")
    assert response.status_code == 200
    message = response.context["message"]
    assert "Hello <strong>there</strong>" in message.html
    assert "/unsubscribe/" in message.html and message.subject == "Day one"
    page = response.content.decode()
    assert 'sandbox=""' in page
    assert "Hello &lt;strong&gt;there&lt;/strong&gt;" in page  # inside srcdoc, escaped
    assert "Start here" in page and "ada@example.com" in page


def test_the_preview_is_personalised_for_a_chosen_subscriber(client, editor, sequence, weekly):
    subscribe(email="zoe@example.com", newsletter=weekly, source="admin", name="Zoë")
    response = client.get(
        f"{AUTOMATIONS}{sequence.pk}/steps/0/preview/", {"reader": "Zoe@Example.com"}
    )
    assert response.context["message"].to == "zoe@example.com"
    unknown = client.get(f"{AUTOMATIONS}{sequence.pk}/steps/0/preview/", {"reader": "x@y.org"})
    assert unknown.context["message"].to == "ada@example.com"
    assert "has no subscriber with that address" in unknown.content.decode()
    hostile = client.get(
        f"{AUTOMATIONS}{sequence.pk}/steps/0/preview/", {"reader": '"><script>x</script>'}
    )
    assert "not an email address" in hostile.content.decode()
    assert "<script>x</script>" not in hostile.content.decode()


def test_a_test_of_a_step_reaches_the_staff_users_own_address(client, editor, sequence, smtp_inbox):
    page = client.get(f"{AUTOMATIONS}{sequence.pk}/steps/0/test/")
    assert page.context["form"]["to_emails"].value() == "editor@example.com"
    response = client.post(
        f"{AUTOMATIONS}{sequence.pk}/steps/0/test/", {"to_emails": "editor@example.com"}
    )
    assert response.status_code == 302
    (message,) = smtp_inbox.wait_for(1)
    assert message["To"] == "editor@example.com"
    assert message["Subject"] == "[Test] Day one"
    html = next(
        part.get_content() for part in message.walk() if part.get_content_type() == "text/html"
    )
    assert "Hello <strong>there</strong>" in html
    assert message["List-Unsubscribe"]
    assert not sequence.steps.get(position=0).issue.deliveries.exists(), "nothing recorded"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("", "Enter at least one"),
        ("not-an-address", "'not-an-address'"),
        ("<script>@example.com", "'<script>@example.com'"),
        (",".join(f"r{n}@example.com" for n in range(TEST_RECIPIENTS_MAX + 1)), "at most 20"),
    ],
)
def test_a_test_to_a_bad_address_sends_nothing_and_names_it(
    client, editor, sequence, smtp_inbox, raw, named
):
    response = client.post(f"{AUTOMATIONS}{sequence.pk}/steps/0/test/", {"to_emails": raw})
    assert response.status_code == 200
    assert named in " ".join(response.context["form"].errors["to_emails"])
    assert "<script>@example.com" not in response.content.decode()
    assert smtp_inbox.envelopes == []


@pytest.mark.parametrize("position", [1, 7])
def test_only_an_email_step_has_a_preview_or_a_test(client, editor, sequence, smtp_inbox, position):
    for page in ["preview", "test"]:
        response = client.post(
            f"{AUTOMATIONS}{sequence.pk}/steps/{position}/{page}/",
            {"to_emails": "editor@example.com"},
            follow=True,
        )
        assert "only a saved email step has a preview and a test send" in (
            response.content.decode()
        )
    assert smtp_inbox.envelopes == []


# Activate, pause, delete; the funnel.


def test_the_buttons_activate_pause_and_resume_an_automation(client, editor, sequence):
    page = client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    assert "Activate" in page and "A draft: nobody enrolls" in page
    client.post(f"{AUTOMATIONS}{sequence.pk}/activate/")
    assert stored(sequence)["status"] == "active"
    assert "Pause" in client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    client.post(f"{AUTOMATIONS}{sequence.pk}/pause/")
    assert stored(sequence)["status"] == "paused"
    assert "Resume" in client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    client.post(f"{AUTOMATIONS}{sequence.pk}/activate/")
    assert stored(sequence)["status"] == "active"
    assert client.get(f"{AUTOMATIONS}{sequence.pk}/pause/").status_code == 405


def test_a_refused_button_says_why_and_changes_nothing(client, editor, weekly, sequence):
    empty = automation_create(newsletter=weekly, name="Empty", trigger="subscribed")
    response = client.post(f"{AUTOMATIONS}{empty.pk}/activate/", follow=True)
    assert "An automation needs a step before it starts." in response.content.decode()
    assert stored(empty)["status"] == "draft"
    response = client.post(f"{AUTOMATIONS}{sequence.pk}/pause/", follow=True)
    assert "Only an active automation can be paused." in response.content.decode()
    assert stored(sequence)["status"] == "draft"


def test_deleting_from_the_page_deletes_through_the_service(client, editor, weekly, sequence):
    page = client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    assert f"{AUTOMATIONS}{sequence.pk}/delete/" in page
    automation_activate(automation=sequence)
    subscribe(email="ann@example.com", newsletter=weekly, source="form")
    confirm = client.get(f"{AUTOMATIONS}{sequence.pk}/delete/").content.decode()
    assert "2 step(s), and the progress of 1 person(s) through it" in confirm
    issue = sequence.steps.get(position=0).issue
    response = client.post(f"{AUTOMATIONS}{sequence.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Automation.objects.filter(pk=sequence.pk).exists()
    assert not Step.objects.filter(automation_id=sequence.pk).exists()
    issue.refresh_from_db()  # the hidden issue stays: the record of what was sent


def test_the_funnel_stays_on_the_edit_page(client, editor, weekly, sequence):
    automation_activate(automation=sequence)
    subscribe(email="ann@example.com", newsletter=weekly, source="form")
    page = client.get(f"{AUTOMATIONS}{sequence.pk}/change/").content.decode()
    assert "1 enrolled: 1 in progress, 0 finished, 0 exited." in page
    assert "<td>0</td><td>email</td><td>1</td>" in page


def test_the_lists_delete_action_deletes_the_selected_through_the_service(client, editor, sequence):
    data = {"action": "delete_selected", "_selected_action": [sequence.pk]}
    confirm = client.post(AUTOMATIONS, data).content.decode()
    assert "2 step(s), and the progress of 0 person(s) through it" in confirm
    client.post(AUTOMATIONS, {**data, "post": "yes"})
    assert not Automation.objects.filter(pk=sequence.pk).exists()


def test_deleting_every_step_of_an_active_automation_is_refused_above_the_rows(
    client, editor, sequence
):
    automation_activate(automation=sequence)
    data = page_as_posted(client.get(f"{AUTOMATIONS}{sequence.pk}/change/"))
    data.update({"steps-0-DELETE": "on", "steps-1-DELETE": "on"})
    response = post_form(client, f"{AUTOMATIONS}{sequence.pk}/change/", data)
    assert "An active automation needs a step." in response.context["rows"].refusals
    assert "An active automation needs a step." in response.content.decode()
    assert len(stored(sequence)["steps"]) == 2


def test_more_empty_rows_come_without_saving_and_without_losing_anything(client, editor, weekly):
    data = form_data(weekly, [HELLO, DAY, {"kind": "tag_add", "tag": "t", "DELETE": "on"}])
    response = post_form(client, f"{AUTOMATIONS}add/", {**data, "_more_rows": "1"})
    assert response.status_code == 200
    assert not written().exists()
    rows = response.context["rows"].forms
    assert len(rows) == 6
    assert rows[0]["body_markdown"].value() == "Hello **you**."
    assert rows[1]["wait_days"].value() == "1"
    assert rows[2]["DELETE"].value() is True
    assert rows[5]["ORDER"].value() == 5
    assert response.context["form"]["name"].value() == "Onboarding"
    assert 'class="errornote"' not in response.content.decode()
    again = page_as_posted(response)
    again.update({"steps-3-kind": "tag_add", "steps-3-tag": "added"})
    assert post_form(client, f"{AUTOMATIONS}add/", again).status_code == 302
    steps = stored(written().get())["steps"]
    assert [kind for kind, _, _ in steps] == ["email", "wait", "tag_add"]
    assert steps[2][1] == {"tag": "added"}


@pytest.mark.parametrize(
    "broken",
    [
        {"steps-TOTAL_FORMS": None},
        {"steps-TOTAL_FORMS": "999999999"},
        {"steps-TOTAL_FORMS": "x"},
        {"steps-0-ORDER": "first"},
    ],
)
def test_a_tampered_form_gets_its_page_back_with_an_error_and_writes_nothing(
    client, editor, weekly, broken
):
    data = form_data(weekly, [HELLO])
    for name, value in broken.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    response = post_form(client, f"{AUTOMATIONS}add/", data)
    assert response.status_code == 200
    assert 'class="errornote"' in response.content.decode()
    assert not written().exists()


# The date trigger's offset, typed as days and hours before or after the date.


def test_a_date_trigger_typed_as_days_before_is_stored_in_seconds_and_shown_back(
    client, editor, weekly
):
    response = add(
        client,
        weekly,
        [HELLO],
        trigger="date_reached",
        trigger_value="trial_end",
        offset_days="3",
        offset_hours="6",
        offset_when="before",
    )
    assert response.status_code == 302, shown_errors(response)
    automation = written().get()
    assert (automation.trigger, automation.trigger_value) == ("date_reached", "trial_end")
    assert automation.trigger_offset_seconds == -(3 * 86400 + 6 * 3600)
    page = client.get(f"{AUTOMATIONS}{automation.pk}/change/")
    form = page.context["form"]
    assert (form["offset_days"].value(), form["offset_hours"].value()) == ("3", "6")
    assert form["offset_when"].value() == "before"
    # Saved back unchanged, it stays as it was; typed "after", the sign turns.
    unchanged = post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", page_as_posted(page))
    assert unchanged.status_code == 302, shown_errors(unchanged)
    automation.refresh_from_db()
    assert automation.trigger_offset_seconds == -(3 * 86400 + 6 * 3600)
    after = {**page_as_posted(page), "offset_when": "after", "offset_hours": ""}
    assert post_form(client, f"{AUTOMATIONS}{automation.pk}/change/", after).status_code == 302
    automation.refresh_from_db()
    assert automation.trigger_offset_seconds == 3 * 86400


REFUSED_OFFSETS = {
    "words": ({"offset_days": "three"}, "whole numbers"),
    "a fraction": ({"offset_hours": "1.5"}, "whole numbers"),
    "hostile": ({"offset_days": "<script>x</script>"}, "whole numbers"),
    "more than a year": ({"offset_days": "400"}, "(a year)"),
    "huge": ({"offset_days": "999999999999"}, "(a year)"),
    "an offset on another trigger": (
        {"trigger": "tagged", "trigger_value": "trial", "offset_days": "2"},
        "Only a date_reached trigger takes an offset.",
    ),
}


@pytest.mark.parametrize(
    ("fields", "message"), list(REFUSED_OFFSETS.values()), ids=list(REFUSED_OFFSETS)
)
def test_a_refused_offset_is_shown_on_its_days_and_nothing_is_lost(
    client, editor, weekly, fields, message
):
    settings = {"trigger": "date_reached", "trigger_value": "trial_end", **fields}
    response = add(client, weekly, [HELLO, DAY], **settings)
    assert response.status_code == 200
    assert message in field_errors(response, "offset_days"), shown_errors(response)
    assert not written().exists()
    for name, typed in fields.items():
        assert response.context["form"][name].value() == typed
    assert "<script>x</script>" not in response.content.decode()


def test_the_funnel_of_a_date_trigger_counts_who_has_no_readable_date(client, editor, weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Trial",
        trigger="date_reached",
        trigger_value="trial_end",
        steps=[HELLO_STEP],
    )
    for email, value in [("a@example.com", "2027-01-05"), ("b@example.com", "soon")]:
        subscription = subscribe(email=email, newsletter=weekly, source="form")
        subscription.profile.attributes = {"trial_end": value}
        subscription.profile.save(update_fields=["attributes"])
    page = client.get(f"{AUTOMATIONS}{automation.pk}/change/").content.decode()
    assert "1 subscriber(s) have a trial_end that is not a date it can read." in page
