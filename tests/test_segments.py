"""Segments: the filter language matches exactly the people it says, refuses what it
cannot mean, is served by the API, and an issue sent to a segment reaches exactly them."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from signalpost.accounts.services import profile_attributes_set, profile_tags_set
from signalpost.newsletters import tokens
from signalpost.newsletters.models import Segment, Subscription
from signalpost.newsletters.segments import segment_rules_check
from signalpost.newsletters.selectors import segment_subscriptions
from signalpost.newsletters.services import segment_create, segment_update, subscribe, unsubscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.selectors import issue_recipients_count
from signalpost.publishing.services import issue_create, issue_segment_set, issue_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.test_api import api, token  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = {
    # email: (attributes, tags, source, subscribed days ago)
    "ann@example.com": ({"plan": "pro", "age": 41, "city": "Berlin"}, ["vip"], "form", 400),
    "bob@example.com": ({"plan": "free", "age": 29, "city": "Bern"}, ["beta"], "import", 200),
    "cy@example.com": ({"plan": "pro", "age": "35", "trial_end": "2027-01-15"}, [], "api", 30),
    "dee@example.com": ({"age": 30.5, "city": "Paris"}, ["vip", "beta"], "import", 5),
    "eve@example.com": ({}, [], "admin", 1),
}


@pytest.fixture
def letter(db):
    return make_newsletter(slug="weekly", name="The Weekly")


@pytest.fixture
def people(letter):
    """Five active subscribers of ``letter``; matching people elsewhere who must not count."""
    now = timezone.now()
    for email, (attributes, tags, source, days) in PEOPLE.items():
        subscription = subscribe(email=email, newsletter=letter, source=source)
        Subscription.objects.filter(pk=subscription.pk).update(
            subscribed_at=now - timedelta(days=days)
        )
        profile_attributes_set(profile=subscription.profile, attributes=attributes)
        profile_tags_set(profile=subscription.profile, names=tags)
    gone = subscribe(email="gone@example.com", newsletter=letter, source="form")
    profile_attributes_set(profile=gone.profile, attributes={"plan": "pro"})
    profile_tags_set(profile=gone.profile, names=["vip"])
    unsubscribe(email="gone@example.com", newsletter=letter, reason="bye")
    elsewhere = subscribe(email="other@example.com", newsletter=make_newsletter(), source="form")
    profile_attributes_set(profile=elsewhere.profile, attributes={"plan": "pro"})
    return letter


def matching(letter, *conditions, match="all"):
    rules = segment_rules_check({"match": match, "conditions": list(conditions)})
    found = segment_subscriptions(newsletter_id=letter.pk, rules=rules)
    return sorted(found.values_list("profile__email", flat=True))


def attribute(key, op, value=None):
    return {"type": "attribute", "key": key, "op": op, "value": value}


@pytest.mark.parametrize(
    ("conditions", "match", "expected"),
    [
        ([attribute("plan", "equals", "pro")], "all", ["ann", "cy"]),
        ([attribute("city", "contains", "BER")], "all", ["ann", "bob"]),
        # Numbers compare as numbers (30.5 > 30), text that looks like one does not.
        ([attribute("age", "greater", 30)], "all", ["ann", "dee"]),
        ([attribute("age", "less", 30)], "all", ["bob"]),
        ([attribute("trial_end", "less", "2027-02-01")], "all", ["cy"]),
        ([attribute("city", "exists")], "all", ["ann", "bob", "dee"]),
        ([{"type": "tag", "op": "has", "value": "VIP"}], "all", ["ann", "dee"]),
        ([{"type": "tag", "op": "has_not", "value": "vip"}], "all", ["bob", "cy", "eve"]),
        ([{"type": "tag", "op": "has", "value": "nobody-has-it"}], "all", []),
        ([{"type": "source", "op": "equals", "value": "import"}], "all", ["bob", "dee"]),
        (
            [
                {
                    "type": "subscribed",
                    "op": "before",
                    "value": (timezone.now() - timedelta(days=100)).date().isoformat(),
                }
            ],
            "all",
            ["ann", "bob"],
        ),
        (
            [
                {
                    "type": "subscribed",
                    "op": "after",
                    "value": (timezone.now() - timedelta(days=10)).isoformat(),
                }
            ],
            "all",
            ["dee", "eve"],
        ),
        (
            [attribute("plan", "equals", "pro"), {"type": "tag", "op": "has", "value": "vip"}],
            "all",
            ["ann"],
        ),
        (
            [attribute("plan", "equals", "pro"), {"type": "tag", "op": "has", "value": "beta"}],
            "any",
            ["ann", "bob", "cy", "dee"],
        ),
        ([], "all", ["ann", "bob", "cy", "dee", "eve"]),
        # A key is a parameter, never SQL.
        ([attribute("plan'; DROP TABLE accounts_profile; --", "exists")], "all", []),
        ([attribute('a"b\\c', "equals", "x")], "all", []),
    ],
)
def test_a_filter_matches_exactly_the_active_subscribers_it_describes(
    people, conditions, match, expected
):
    assert matching(people, *conditions, match=match) == [f"{n}@example.com" for n in expected]


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ("plan = pro", "JSON object"),
        ({"match": "some", "conditions": []}, "match is all or any"),
        ({"conditions": {"type": "tag"}}, "conditions is a list"),
        ({"conditions": [], "sql": "1=1"}, "unknown keys"),
        ({"conditions": ["plan"]}, "condition 1: a condition is a JSON object"),
        ({"conditions": [{"type": "sql", "op": "raw"}]}, "condition 1: type is one of"),
        ({"conditions": [attribute("plan", "like", "%")]}, "op for attribute is one of"),
        ({"conditions": [attribute("plan", "equals")]}, "equals needs a value"),
        ({"conditions": [attribute("age", "greater", True)]}, "compares a number or a date"),
        ({"conditions": [attribute("age", "greater", [1])]}, "values are text, numbers"),
        ({"conditions": [attribute("bad\x00key", "exists")]}, "condition 1"),
        ({"conditions": [attribute("k" * 101, "exists")]}, "Keys are 1 to 100"),
        ({"conditions": [attribute("city", "contains", 3)]}, "contains compares text"),
        ({"conditions": [{"type": "tag", "op": "has", "value": "a,b"}]}, "comma"),
        ({"conditions": [{"type": "subscribed", "op": "before", "value": "2026-13-45"}]}, "date"),
        ({"conditions": [{"type": "source", "op": "equals", "value": "web"}]}, "source is one"),
        ({"conditions": [attribute("plan", "exists")] * 21}, "at most 20 conditions"),
    ],
)
def test_a_filter_that_cannot_mean_anything_is_refused_naming_the_problem(rules, says):
    with pytest.raises(ValidationError) as refused:
        segment_rules_check(rules)
    assert says in refused.value.message_dict["rules"][0]


def test_a_segment_name_is_unique_within_its_newsletter(letter):
    segment_create(newsletter=letter, name="Pros", rules={"conditions": []})
    with pytest.raises(ValidationError, match="has a segment"):
        segment_create(newsletter=letter, name=" Pros ", rules={"conditions": []})
    with pytest.raises(ValidationError, match="1 to 100"):
        segment_create(newsletter=letter, name="bad\nname", rules={"conditions": []})
    assert Segment.objects.count() == 1


PROS = {"match": "all", "conditions": [attribute("plan", "equals", "pro")]}


def test_the_api_creates_reads_counts_changes_and_deletes_a_segment(api, people):  # noqa: F811
    created = api("post", "/segments", {"newsletter": "weekly", "name": "Pros", "rules": PROS})
    assert created.status_code == 201, created.content
    segment_id = created.json()["id"]

    assert api("get", f"/segments/{segment_id}/count").json() == {"id": segment_id, "count": 2}
    listed = api("get", "/segments?newsletter=weekly").json()
    assert [s["name"] for s in listed] == ["Pros"]
    vips = {"conditions": [{"type": "tag", "op": "has", "value": "vip"}]}
    changed = api("put", f"/segments/{segment_id}", {"name": "VIPs", "rules": vips})
    assert changed.json()["rules"] == {"match": "all", **vips}
    assert api("get", f"/segments/{segment_id}/count").json()["count"] == 2
    assert api("delete", f"/segments/{segment_id}").status_code == 204
    assert api("get", f"/segments/{segment_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"newsletter": "nope", "name": "x", "rules": PROS}, "newsletter"),
        ({"newsletter": "weekly", "name": "", "rules": PROS}, "name"),
        ({"newsletter": "weekly", "name": "x" * 101, "rules": PROS}, "name"),
        (
            {"newsletter": "weekly", "name": "x", "rules": {"conditions": [{"type": "sql"}]}},
            "rules",
        ),
        ({"newsletter": "weekly", "name": "x", "rules": "DROP TABLE"}, "rules"),
        ({"newsletter": "weekly", "name": "x"}, "rules"),
    ],
)
def test_the_api_refuses_a_bad_segment_with_400_naming_the_field(api, letter, body, field):  # noqa: F811
    response = api("post", "/segments", body)

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    assert not Segment.objects.exists()


def test_the_openapi_document_lists_the_segment_operations(api):  # noqa: F811
    paths = api("get", "/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/segments"])
    assert {"get", "put", "delete"} <= set(paths["/api/v1/segments/{segment_id}"])
    assert "get" in paths["/api/v1/segments/{segment_id}/count"]
    assert "put" in paths["/api/v1/issues/{issue_id}/segment"]


def test_an_issue_takes_only_a_segment_of_its_own_newsletter(people):
    issue = issue_create(newsletter=people, subject="Hello", body_markdown="Hi.")
    foreign = segment_create(newsletter=make_newsletter(), name="All", rules={})
    with pytest.raises(ValidationError, match="another newsletter"):
        issue_segment_set(issue=issue, segment=foreign)
    issue.refresh_from_db()
    assert issue.segment is None


def test_an_issue_sent_to_a_segment_reaches_exactly_its_people_once(smtp_inbox, people, settings):
    # Chunks of two: the segment's filter holds in every chunk, not only the first.
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    segment = segment_create(
        newsletter=people,
        name="Pros or VIPs",
        rules={
            "match": "any",
            "conditions": [
                attribute("plan", "equals", "pro"),
                {"type": "tag", "op": "has", "value": "vip"},
            ],
        },
    )
    issue = issue_create(newsletter=people, subject="For you", body_markdown="Hello.")
    issue_segment_set(issue=issue, segment=segment)
    assert issue_recipients_count(issue=Issue.objects.get(pk=issue.pk)) == 3

    assert issue_send(issue=issue) is True
    # Changed after the click: the send keeps the filter it started with.
    segment_update(segment=segment, name="Nobody", rules={"conditions": [attribute("x", "exists")]})
    run_worker_until_idle()

    issue.refresh_from_db()
    # Sign-ups through the form and the API got their welcome email too.
    messages = [m for m in smtp_inbox.messages if m["Subject"] == "For you"]
    expected = ["ann@example.com", "cy@example.com", "dee@example.com"]
    assert sorted(message["To"] for message in messages) == expected
    assert (issue.status, issue.recipient_count) == ("sent", 3)
    assert sorted(Delivery.objects.values_list("email", flat=True)) == expected
    # The unsubscribe link leaves the newsletter itself: the segment is not a list.
    url = messages[0]["List-Unsubscribe"].strip("<>")
    link_token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]
    _profile, newsletter_id = tokens.token_read(token=link_token, purpose=tokens.UNSUBSCRIBE)
    assert newsletter_id == people.pk
