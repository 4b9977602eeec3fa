"""/api/v1/automations: write, validate, start, pause and follow automations."""

import json

import pytest

from signalpost.api.tokens import api_token_create
from signalpost.automations.models import Automation
from signalpost.newsletters.services import subscribe
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db

WELCOME = {"kind": "email", "config": {"subject": "Hi", "body_markdown": "Hello **you**."}}
DAY = {"kind": "wait", "config": {"seconds": 86400}}


@pytest.fixture
def api(client):
    token = api_token_create(name="tests")[1]

    def call(method, path, body=None):
        return getattr(client, method)(
            f"/api/v1{path}",
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    return call


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly")


def create(api, **fields):
    body = {"newsletter": "weekly", "name": "Onboarding", "trigger": "subscribed"}
    return api("post", "/automations", {**body, **fields})


def test_an_automation_is_created_started_and_followed_through_the_api(api, weekly):
    response = create(api, steps=[WELCOME, DAY, {**WELCOME, "config": {**WELCOME["config"]}}])
    assert response.status_code == 201, response.content
    automation = response.json()
    assert automation["status"] == "draft"
    assert [step["kind"] for step in automation["steps"]] == ["email", "wait", "email"]

    started = api("post", f"/automations/{automation['id']}/activate")
    assert started.json()["status"] == "active"
    subscribe(email="ann@example.com", newsletter=weekly, source="form")

    counts = api("get", f"/automations/{automation['id']}/counts").json()
    assert (counts["enrolled"], counts["active"]) == (1, 1)
    assert counts["steps"][0]["at_step"] == 1
    enrollments = api("get", f"/automations/{automation['id']}/enrollments").json()
    assert enrollments["items"][0]["email"] == "ann@example.com"
    listed = api("get", "/automations?newsletter=weekly").json()
    assert [a["name"] for a in listed] == ["Welcome email", "Onboarding"]

    paused = api("post", f"/automations/{automation['id']}/pause")
    assert paused.json()["status"] == "paused"
    assert api("post", f"/automations/{automation['id']}/pause").status_code == 409


def test_an_edit_replaces_the_steps_and_keeps_the_rest(api, weekly):
    automation = create(api, steps=[WELCOME]).json()
    changed = api(
        "patch", f"/automations/{automation['id']}", {"steps": [DAY, WELCOME], "name": "New"}
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["name"] == "New"
    assert [step["kind"] for step in changed.json()["steps"]] == ["wait", "email"]
    assert changed.json()["trigger"] == "subscribed"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([WELCOME, WELCOME], "a wait must come between"),
        ([WELCOME, {"kind": "wait", "config": {"seconds": 0}}, WELCOME], "a wait is 1 to"),
        (
            [WELCOME, DAY, {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 1}}],
            "only jumps forward",
        ),
        (
            [
                WELCOME,
                {"kind": "branch", "config": {"if": {"has_tag": "x"}, "goto": 3}},
                DAY,
                WELCOME,
            ],
            "a wait must come between",
        ),
        ([{"kind": "email", "config": {"subject": "Hi", "body_markdown": ""}}], "needs a body"),
        ([{"kind": "email", "config": {"subject": "A\nB", "body_markdown": "x"}}], "one line"),
        ([{"kind": "fly", "config": {}}], "the kind is one of"),
        ([{"kind": "wait", "config": {"seconds": 1, "extra": 2}}], "unknown setting"),
        ([{"kind": "tag_add", "config": {"tag": {"nested": 1}}}], "A tag is text"),
        ([{"kind": "set_attribute", "config": {"key": "k", "value": [1]}}], "values are"),
        ([{"kind": "wait", "config": {"weekday": 9, "time": "09:00"}}], "weekday"),
        ([{"kind": "wait", "config": {"weekday": 1, "time": "25:00"}}], "HH:MM"),
        (["not an object"], "valid dictionary"),
    ],
)
def test_a_step_that_cannot_run_is_refused_with_its_position(api, weekly, steps, message):
    response = create(api, steps=steps)
    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json()["errors"])
    assert not Automation.objects.filter(is_welcome=False).exists(), "nothing half-written"


def test_an_email_whose_template_lost_the_unsubscribe_link_is_refused(api, weekly):
    from signalpost.newsletters.models import EmailTemplate

    # Written to the table directly: the template editor refuses such a template
    # (mailtemplates.template_check), an older one may still lack the link.
    EmailTemplate.objects.create(
        newsletter=weekly, name="issue.html", body="<p>{{ body_html }}</p>"
    )
    EmailTemplate.objects.create(newsletter=weekly, name="issue.txt", body="{{ body_text }}")
    response = create(api, steps=[WELCOME])
    assert response.status_code == 400
    assert "no unsubscribe link" in json.dumps(response.json()["errors"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": "whenever"}, "trigger"),
        ({"trigger": "tagged"}, "trigger_value"),
        ({"trigger": "subscribed", "trigger_value": "x"}, "trigger_value"),
        ({"trigger_sources": ["carrier pigeon"]}, "trigger_sources"),
        ({"newsletter": "nope"}, "newsletter"),
        ({"name": "   "}, "name"),
        ({"name": "On\x00boarding"}, "name"),
        ({"exit_tag": "a,b"}, "exit_tag"),
    ],
)
def test_a_bad_trigger_is_a_400_naming_the_field(api, weekly, fields, field):
    response = create(api, **fields)
    assert response.status_code == 400, response.content
    assert field in {error["field"] for error in response.json()["errors"]}


def test_an_automation_without_steps_cannot_start(api, weekly):
    automation = create(api).json()
    response = api("post", f"/automations/{automation['id']}/activate")
    assert response.status_code == 400
    assert api("get", "/automations/999999").status_code == 404
