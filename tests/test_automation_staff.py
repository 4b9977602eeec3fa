"""Writing automations in the staff pages: settings and steps as rows, the API's one
validation with its refusals on the row they name, a preview and a test send of each
email step, and the buttons that start, pause and delete one."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from signalpost.api.tokens import api_token_create
from signalpost.automations.models import Automation, Step
from signalpost.automations.services import automation_activate, automation_create
from signalpost.newsletters.services import subscribe
from signalpost.publishing.services import BODY_MAX_LENGTH, TEST_RECIPIENTS_MAX
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db

AUTOMATIONS = "/admin/automations/automation/"
HELLO = {"kind": "email", "subject": "Welcome aboard", "body_markdown": "Hello **you**."}
DAY = {"kind": "wait", "wait_days": "1"}


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


def add(client, newsletter, rows, **settings):
    return client.post(f"{AUTOMATIONS}add/", form_data(newsletter, rows, **settings))


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
        {"kind": "email", "config": {"subject": "Welcome aboard", "body_markdown": "Hello **you**.",
                                     "preview_text": "Glad you came"}},
        {"kind": "wait", "config": {"seconds": 2 * 86400 + 3 * 3600 + 4 * 60}},
        {"kind": "tag_add", "config": {"tag": "onboarded"}},
        {"kind": "set_attribute", "config": {"key": "plan", "value": 30}},
        {"kind": "webhook", "config": {"event": "onboarded"}},
        {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 9}},
        {"kind": "wait", "config": {"weekday": 0, "time": "09:00"}},
        {"kind": "branch", "config": {"if": {"has_tag": "vip"}, "goto": 9}},
        {"kind": "email", "config": {"subject": "Still there?",
                                     "body_markdown": "A [link](https://e.org)."}},
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
        ("email", {"subject": "Welcome aboard", "body_markdown": "Hello **you**.", "preview_text": ""}),
    ]


def page_as_posted(response):
    """The data a browser would post back from the page as shown (nothing changed)."""
    data = {}
    for form in [response.context["form"], response.context["rows"].management_form,
                 *response.context["rows"].forms]:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def test_an_automation_saved_back_unchanged_stays_exactly_as_it_was(client, editor, weekly):
    automation = automation_create(
        newsletter=weekly,
        name="Everything",
        trigger="tagged",
        trigger_value="trial",
        exit_tag="bought",
        steps=[
            {"kind": "email", "config": {"subject": "S", "body_markdown": "B", "preview_text": "P"}},
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
    response = client.post(f"{AUTOMATIONS}{automation.pk}/change/", page_as_posted(page))
    assert response.status_code == 302, shown_errors(response)
    assert stored(automation) == before


def test_an_edit_through_the_page_changes_the_steps(client, editor, weekly):
    automation = automation_create(
        newsletter=weekly, name="Short", trigger="subscribed",
        steps=[{"kind": "tag_add", "config": {"tag": "a"}}],
    )
    data = page_as_posted(client.get(f"{AUTOMATIONS}{automation.pk}/change/"))
    data.update({"name": "Longer", "steps-1-kind": "wait", "steps-1-wait_minutes": "10",
                 "steps-2-kind": "email", "steps-2-subject": "Hi", "steps-2-body_markdown": "Yo"})
    assert client.post(f"{AUTOMATIONS}{automation.pk}/change/", data).status_code == 302
    after = stored(automation)
    assert after["name"] == "Longer"
    assert [kind for kind, _, _ in after["steps"]] == ["tag_add", "wait", "email"]
