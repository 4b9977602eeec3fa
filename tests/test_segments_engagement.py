"""Segments by engagement: "clicked (opened) any of the last N issues" matches exactly the
people whose human clicks (opens) say so, of that newsletter's last N sent issues; the
API, the staff form and the count refuse what cannot mean anything; and an issue sent to
such a segment reaches exactly the people who clicked."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.engagement.models import Engagement, Kind
from signalpost.newsletters.models import Segment
from signalpost.newsletters.segments import ENGAGEMENT_ISSUES_MAX, segment_rules_check
from signalpost.newsletters.services import segment_create
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_segment_set, issue_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.test_api import api, token  # noqa: F401  (fixtures)
from tests.test_engagement import (
    click,
    record_all,
    sent_a_minute_ago,
    sent_issue,
    tracked_paths,
)
from tests.test_segments import PEOPLE, letter, matching, people  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

EVERYONE = sorted(PEOPLE)


def condition(op, value):
    return {"type": "engagement", "op": op, "value": value}


def issue_sent(newsletter, days_ago, status=Issue.Status.SENT):
    """An issue of ``newsletter`` whose send finished ``days_ago`` (or still going)."""
    issue = issue_create(newsletter=newsletter, subject=f"{days_ago} days", body_markdown="Hi.")
    moment = timezone.now() - timedelta(days=days_ago)
    Issue.objects.filter(pk=issue.pk).update(
        status=status, sending_started_at=moment, sent_at=moment
    )
    return issue


def event(issue, email, kind=Kind.CLICK, human=True):
    Engagement.objects.create(
        newsletter_id=issue.newsletter_id,
        issue=issue,
        profile=Profile.objects.get(email=email),
        kind=kind,
        is_human=human,
        machine="" if human else "scanner",
        occurred_at=timezone.now(),
    )


@pytest.fixture
def history(people):  # noqa: F811
    """Four sent issues (oldest first), one still sending, and who did what with them."""
    first, _second, third, fourth = (issue_sent(people, days) for days in (40, 30, 20, 10))
    sending = issue_sent(people, 0, status=Issue.Status.SENDING)
    elsewhere = issue_sent(make_newsletter(slug="other"), 0)
    event(fourth, "ann@example.com")
    event(first, "bob@example.com")
    event(fourth, "cy@example.com", human=False)  # a link scanner is not a person
    event(third, "dee@example.com", kind=Kind.OPEN)
    event(sending, "eve@example.com")  # not one of the last sent issues yet
    event(elsewhere, "eve@example.com")  # another newsletter's issue
    event(fourth, "gone@example.com")  # no longer subscribed
    return people


def matching_names(letter, *conditions, match="all"):  # noqa: F811
    return [email.split("@")[0] for email in matching(letter, *conditions, match=match)]


@pytest.mark.parametrize(
    ("conditions", "match", "expected"),
    [
        ([condition("clicked", 1)], "all", ["ann"]),
        ([condition("clicked", 3)], "all", ["ann"]),
        ([condition("clicked", 4)], "all", ["ann", "bob"]),
        ([condition("clicked", ENGAGEMENT_ISSUES_MAX)], "all", ["ann", "bob"]),
        ([condition("opened", 2)], "all", ["dee"]),
        ([condition("opened", 1)], "all", []),
        ([condition("not_clicked", 3)], "all", ["bob", "cy", "dee", "eve"]),
        ([condition("not_opened", 5)], "all", ["ann", "bob", "cy", "eve"]),
        (
            [condition("clicked", 1), {"type": "tag", "op": "has", "value": "beta"}],
            "any",
            ["ann", "bob", "dee"],
        ),
        (
            [condition("clicked", 4), {"type": "tag", "op": "has", "value": "vip"}],
            "all",
            ["ann"],
        ),
    ],
)
def test_an_engagement_condition_counts_human_events_of_the_newsletters_last_sent_issues(
    history, conditions, match, expected
):
    assert matching_names(history, *conditions, match=match) == expected


def test_before_any_issue_was_sent_nobody_clicked_and_everybody_did_not(people):  # noqa: F811
    assert matching_names(people, condition("clicked", 3)) == []
    assert matching_names(people, condition("not_clicked", 3)) == [
        n.split("@")[0] for n in EVERYONE
    ]
    either = [condition("not_clicked", 3), {"type": "tag", "op": "has", "value": "vip"}]
    assert len(matching_names(people, *either, match="any")) == len(PEOPLE)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (0, "last 1 to 100 issues"),
        (-3, "last 1 to 100 issues"),
        (ENGAGEMENT_ISSUES_MAX + 1, "last 1 to 100 issues"),
        (10**40, "last 1 to 100 issues"),
        ("3", "whole number"),
        (3.0, "whole number"),
        (True, "whole number"),
        (None, "whole number"),
        ([3], "whole number"),
        ("3; DROP TABLE engagement_engagement", "whole number"),
    ],
)
def test_an_engagement_condition_needs_a_whole_number_of_issues(value, says):
    with pytest.raises(ValidationError) as refused:
        segment_rules_check({"conditions": [condition("clicked", value)]})
    assert refused.value.message_dict["rules"][0].startswith("condition 1: ")
    assert says in refused.value.message_dict["rules"][0]


def test_an_engagement_condition_names_its_tests():
    with pytest.raises(ValidationError, match="op for engagement is one of clicked, opened"):
        segment_rules_check({"conditions": [condition("clicked_all", 3)]})


def test_a_counts_only_newsletter_refuses_an_engagement_segment_and_says_why(letter):  # noqa: F811
    letter.engagement_aggregate_only = True
    letter.save()
    rules = {"conditions": [{"type": "tag", "op": "has", "value": "vip"}, condition("opened", 2)]}
    with pytest.raises(ValidationError) as refused:
        segment_create(newsletter=letter, name="Readers", rules=rules)
    says = refused.value.message_dict["rules"][0]
    assert says.startswith("condition 2: ") and "keeps engagement counts only" in says
    assert not Segment.objects.exists()


def test_the_api_saves_and_counts_an_engagement_segment(api, history):  # noqa: F811
    rules = {"conditions": [condition("clicked", 4)]}
    created = api("post", "/segments", {"newsletter": "weekly", "name": "Clickers", "rules": rules})
    assert created.status_code == 201, created.content
    assert created.json()["rules"] == {"match": "all", **rules}
    assert api("get", f"/segments/{created.json()['id']}/count").json()["count"] == 2


@pytest.mark.parametrize("value", [0, -1, 10**40, "3", "lots", None, 2.5, {"n": 3}])
def test_the_api_refuses_a_bad_number_of_issues_with_400_naming_rules(api, letter, value):  # noqa: F811
    body = {
        "newsletter": "weekly",
        "name": "x",
        "rules": {"conditions": [condition("opened", value)]},
    }
    response = api("post", "/segments", body)
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    # A number past 64 bits is refused where the JSON is read, naming where it was.
    assert error["field"] in ("rules", "rules.conditions.0.value")
    assert "condition 1" in error["message"] or "not a number this API takes" in error["message"]
    assert not Segment.objects.exists()


def test_the_api_says_a_counts_only_newsletter_has_no_engagement_segments(api, letter):  # noqa: F811
    letter.engagement_aggregate_only = True
    letter.save()
    rules = {"conditions": [condition("clicked", 3)]}
    response = api("post", "/segments", {"newsletter": "weekly", "name": "x", "rules": rules})
    assert response.status_code == 400, response.content
    assert "keeps engagement counts only" in response.json()["errors"][0]["message"]


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("editor", "editor@example.com", "pw")
    client.force_login(staff)
    return client


def live_count(staff_client, letter, value, op="clicked"):  # noqa: F811
    query = {"newsletter": letter.pk, "c1_type": "engagement", "c1_op": op, "c1_value": value}
    return staff_client.get("/admin/newsletters/segment/count/", query)


def test_the_staff_forms_live_count_reads_the_number_of_issues_typed(staff_client, history):
    answer = live_count(staff_client, history, " 4 ")
    assert answer.status_code == 200
    assert answer.json() == {"count": 2, "of": len(PEOPLE)}


@pytest.mark.parametrize("value", ["0", "101", "three", "3.5", "9" * 40, "<script>", ""])
def test_the_staff_forms_live_count_says_what_is_wrong_with_the_number(
    staff_client,
    letter,  # noqa: F811
    value,
):
    answer = live_count(staff_client, letter, value)
    assert answer.status_code == 400
    assert "whole number" in " ".join(answer.json()["errors"])


def test_the_staff_form_saves_an_engagement_segment_or_says_why_not(staff_client, letter):  # noqa: F811
    form = {"newsletter": letter.pk, "name": "Readers", "match": "all"}
    row = {"c1_type": "engagement", "c1_op": "not_opened", "c1_value": "5"}
    saved = staff_client.post("/admin/newsletters/segment/add/", {**form, **row})
    assert saved.status_code == 302, saved.content
    assert Segment.objects.get().rules["conditions"] == [condition("not_opened", 5)]

    letter.engagement_aggregate_only = True
    letter.save()
    refused = staff_client.post("/admin/newsletters/segment/add/", {**form, **row, "name": "Again"})
    assert refused.status_code == 200
    assert "keeps engagement counts only" in refused.content.decode()
    assert Segment.objects.count() == 1


def test_an_issue_sent_to_the_people_who_clicked_the_last_one_reaches_exactly_them(
    client,
    letter,  # noqa: F811
    smtp_inbox,
):
    _first, messages = sent_issue(letter, smtp_inbox, people=["ann@example.com", "bob@example.com"])
    sent_a_minute_ago()
    ann_message = next(m for m in messages if m["To"] == "ann@example.com")
    click(client, tracked_paths(ann_message)[0])
    record_all()
    clickers = segment_create(
        newsletter=letter, name="Clickers", rules={"conditions": [condition("clicked", 1)]}
    )
    follow_up = issue_create(newsletter=letter, subject="Thanks for reading", body_markdown="Hi.")
    issue_segment_set(issue=follow_up, segment=clickers)

    # The follow-up is not one of the last sent issues while it goes out.
    assert issue_send(issue=follow_up) is True
    run_worker_until_idle()

    arrived = [m["To"] for m in smtp_inbox.messages if m["Subject"] == "Thanks for reading"]
    assert arrived == ["ann@example.com"]
