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
        ([{"kind": "webhook", "config": {"event": "a\x00b"}}], "without control characters"),
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
        ({"name": "Nul\x00here"}, "name"),
        ({"trigger": "attribute_changed", "trigger_value": "k\x00"}, "trigger_value"),
        ({"exit_tag": "a,b"}, "exit_tag"),
    ],
)
def test_a_bad_trigger_is_a_400_naming_the_field(api, weekly, fields, field):
    response = create(api, **fields)
    assert response.status_code == 400, response.content
    assert field in {error["field"] for error in response.json()["errors"]}


def test_a_name_with_a_nul_is_refused_on_change_too_and_changes_nothing(api, weekly):
    automation = create(api).json()
    response = api("patch", f"/automations/{automation['id']}", {"name": "A\x00B"})
    assert response.status_code == 400, response.content
    assert "control characters" in json.dumps(response.json()["errors"])
    assert Automation.objects.get(pk=automation["id"]).name == automation["name"]


def test_an_automation_without_steps_cannot_start(api, weekly):
    automation = create(api).json()
    response = api("post", f"/automations/{automation['id']}/activate")
    assert response.status_code == 400
    assert api("get", "/automations/999999").status_code == 404


TRIAL = {"trigger": "date_reached", "trigger_value": "trial_end"}


def test_a_date_trigger_with_its_offset_is_stored_changed_and_dropped_with_it(api, weekly):
    response = create(api, **TRIAL, trigger_offset_seconds=-259200, steps=[WELCOME])
    assert response.status_code == 201, response.content
    automation = response.json()
    assert (automation["trigger"], automation["trigger_value"]) == ("date_reached", "trial_end")
    assert automation["trigger_offset_seconds"] == -259200

    path = f"/automations/{automation['id']}"
    moved = api("patch", path, {"trigger_offset_seconds": 3600})
    assert moved.json()["trigger_offset_seconds"] == 3600
    renamed = api("patch", path, {"trigger_value": "renews_on"})
    assert renamed.json()["trigger_offset_seconds"] == 3600, "kept while it is a date trigger"
    tagged = api("patch", path, {"trigger": "tagged", "trigger_value": "trial"})
    assert tagged.json()["trigger_offset_seconds"] == 0, "no offset without a date"
    counts = api("get", f"{path}/counts").json()
    assert counts["not_a_date"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": "date_reached"}, "trigger_value"),
        ({**TRIAL, "trigger_value": "   "}, "trigger_value"),
        ({**TRIAL, "trigger_value": "trial\x00end"}, "trigger_value"),
        ({**TRIAL, "trigger_value": "k" * 101}, "trigger_value"),
        ({**TRIAL, "trigger_value": ["trial_end"]}, "trigger_value"),
        ({**TRIAL, "trigger_offset_seconds": 1.5}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": "three days"}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": None}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": True}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": "-60"}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": {"days": 3}}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": 10**30}, "trigger_offset_seconds"),
        ({**TRIAL, "trigger_offset_seconds": -(366 * 86400 + 1)}, "trigger_offset_seconds"),
        ({"trigger": "subscribed", "trigger_offset_seconds": 60}, "trigger_offset_seconds"),
        (
            {"trigger": "tagged", "trigger_value": "x", "trigger_offset_seconds": -60},
            "trigger_offset_seconds",
        ),
    ],
)
def test_a_bad_date_trigger_is_a_400_naming_the_field_and_stores_nothing(
    api, weekly, fields, field
):
    response = create(api, **fields, steps=[WELCOME])
    assert response.status_code == 400, response.content
    assert field in {error["field"] for error in response.json()["errors"]}
    assert not Automation.objects.filter(is_welcome=False).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"trigger_offset_seconds": 10**12},
        {"trigger_offset_seconds": True},
        {"trigger_offset_seconds": "-1"},
        {"trigger_value": ""},
        {"trigger": "subscribed"},
    ],
)
def test_a_bad_change_of_a_date_trigger_is_refused_and_changes_nothing(api, weekly, change):
    automation = create(api, **TRIAL, trigger_offset_seconds=-60, steps=[WELCOME]).json()
    response = api("patch", f"/automations/{automation['id']}", change)
    assert response.status_code == 400, response.content
    stored = Automation.objects.get(pk=automation["id"])
    assert (stored.trigger, stored.trigger_value, stored.trigger_offset_seconds) == (
        "date_reached",
        "trial_end",
        -60,
    )


@pytest.mark.parametrize("offset", ["-60", 1.0, True, None, [1], 10**40])
def test_the_services_refuse_an_offset_that_is_not_whole_seconds_within_a_year(weekly, offset):
    from django.core.exceptions import ValidationError

    from signalpost.automations.services import automation_create

    fields = {**TRIAL, "trigger_offset_seconds": offset}
    if offset is None:
        automation = automation_create(newsletter=weekly, name="Trial", **fields)
        assert automation.trigger_offset_seconds == 0, "None is no offset"
        return
    with pytest.raises(ValidationError) as refused:
        automation_create(newsletter=weekly, name="Trial", **fields)
    assert "trigger_offset_seconds" in refused.value.message_dict
    assert not Automation.objects.filter(is_welcome=False).exists()


def test_the_openapi_document_describes_the_date_triggers_offset_and_count(client, db):
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("AutomationIn", "AutomationUpdateIn"):
        offset = schemas[name]["properties"]["trigger_offset_seconds"]
        described = json.dumps(offset)
        assert '"maximum": 31622400' in described and '"minimum": -31622400' in described
        assert "3 days before" in described
    assert "trigger_offset_seconds" in schemas["AutomationOut"]["required"]
    assert "date_reached" in schemas["AutomationIn"]["properties"]["trigger"]["description"]
    assert "no date" in json.dumps(schemas["AutomationCountsOut"]["properties"]["not_a_date"])
