"""The audience pages in Chromium: a segment's form with its live count, a profile's tags,
the send page of an issue for a segment, and the preference center's own attributes.

Each page is shown at a desktop and a phone width (screenshots under
var/screenshots/staff-*.png), with no serious or critical axe-core violation and
no sideways scrolling.
"""

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.accounts.services import profile_attributes_set, profile_tags_set
from signalpost.engagement.models import Engagement
from signalpost.newsletters.links import preferences_path
from signalpost.newsletters.models import Newsletter, Segment
from signalpost.newsletters.services import segment_create, subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_segment_set
from tests.browser.test_staff_pages_in_browser import (  # noqa: F401  (fixture)
    CLEAN,
    check,
    shown_clean_at_each_width,
    staff,
)
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def weekly(db):
    weekly = make_newsletter(
        slug="weekly",
        name="The Weekly",
        subscriber_attributes="frequency: How often? = weekly, monthly\ncity: Your city",
    )
    for number, plan in enumerate(["pro", "pro", "free", "pro", "free"]):
        subscription = subscribe(email=f"p{number}@example.com", newsletter=weekly, source="admin")
        profile_attributes_set(profile=subscription.profile, attributes={"plan": plan})
        profile_tags_set(profile=subscription.profile, names=["vip"] if number < 2 else [])
    return weekly


def segment_form_start(page, live_server, name):
    """Open a new segment of The Weekly named ``name``; return its live count."""
    page.goto(live_server.url + "/admin/newsletters/segment/add/")
    page.select_option("#id_newsletter", label="The Weekly")
    page.fill("#id_name", name)
    return page.locator("#segment-count")


def test_the_segment_form_counts_the_matching_subscribers_as_the_filter_changes(
    live_server,
    staff,  # noqa: F811
    weekly,
):
    count = segment_form_start(staff, live_server, "Pros")
    staff.select_option("#id_c1_type", "attribute")
    staff.fill("#id_c1_key", "plan")
    staff.select_option("#id_c1_op", "equals")
    staff.fill("#id_c1_value", "pro")
    count.filter(has_text="3 of 5").wait_for()

    staff.select_option("#id_c2_type", "tag")
    staff.select_option("#id_c2_op", "has")
    staff.fill("#id_c2_value", "vip")
    count.filter(has_text="2 of 5").wait_for()
    shown_clean_at_each_width(staff, "segment-form")

    staff.click("input[name=_save]")
    segment = Segment.objects.get(name="Pros")
    assert segment.rules["conditions"][1] == {"type": "tag", "op": "has", "value": "vip"}
    assert (
        check(staff, live_server.url, f"/admin/newsletters/segment/{segment.pk}/change/", "segment")
        == CLEAN
    )
    assert "2 active subscribers" in staff.content()


def test_the_segment_form_counts_the_people_who_clicked_the_last_issues(
    live_server,
    staff,  # noqa: F811
    weekly,
):
    issue = issue_create(newsletter=weekly, subject="Last week", body_markdown="Hi.")
    Issue.objects.filter(pk=issue.pk).update(status="sent", sent_at=timezone.now())
    for email in ("p0@example.com", "p4@example.com"):
        Engagement.objects.create(
            newsletter=weekly,
            issue=issue,
            profile=Profile.objects.get(email=email),
            kind="click",
            is_human=True,
            occurred_at=timezone.now(),
        )
    count = segment_form_start(staff, live_server, "Clickers")
    staff.select_option("#id_c1_type", "engagement")
    staff.select_option("#id_c1_op", "clicked")
    count.filter(has_text="whole number").wait_for()
    staff.fill("#id_c1_value", "3")
    count.filter(has_text="2 of 5").wait_for()
    shown_clean_at_each_width(staff, "segment-form-engagement")

    staff.click("input[name=_save]")
    # The list of segments counts it.
    staff.get_by_text("2 active subscribers").wait_for()
    segment = Segment.objects.get(name="Clickers")
    assert segment.rules["conditions"] == [{"type": "engagement", "op": "clicked", "value": 3}]


def test_a_segment_form_that_cannot_be_counted_says_why_and_saves_nothing(
    live_server,
    staff,  # noqa: F811
    weekly,
):
    count = segment_form_start(staff, live_server, "Broken")
    staff.select_option("#id_c1_type", "attribute")
    staff.fill("#id_c1_key", "age")
    staff.select_option("#id_c1_op", "greater")
    count.filter(has_text="needs a value").wait_for()

    staff.click("input[name=_save]")
    assert (
        "greater needs a value"
        in staff.locator(".errornote, .errorlist").first.inner_text() + staff.content()
    )
    assert not Segment.objects.exists()


def test_the_send_page_of_a_segment_issue_names_it_and_counts_its_people(
    live_server,
    staff,  # noqa: F811
    weekly,
):
    segment = segment_create(
        newsletter=weekly,
        name="VIPs",
        rules={"conditions": [{"type": "tag", "op": "has", "value": "vip"}]},
    )
    issue = issue_create(newsletter=weekly, subject="For VIPs", body_markdown="Hello.")
    issue_segment_set(issue=issue, segment=segment)

    assert (
        check(
            staff,
            live_server.url,
            f"/admin/publishing/issue/{issue.pk}/send/",
            "issue-send-segment",
        )
        == CLEAN
    )
    assert staff.locator("#recipient-count").inner_text() == "2"
    assert "The segment “VIPs” only" in staff.content()


def test_staff_tag_a_person_on_their_page(live_server, staff, weekly):  # noqa: F811
    profile = Profile.objects.get(email="p3@example.com")
    path = f"/admin/accounts/profile/{profile.pk}/change/"
    assert check(staff, live_server.url, path, "profile-tags") == CLEAN

    staff.fill("#id_tag_names", "Beta, VIP")
    staff.click("input[name=_save]")
    assert sorted(profile.tags.values_list("name", flat=True)) == ["beta", "vip"]


def test_a_subscriber_sets_the_attributes_their_newsletter_offers(live_server, browser, weekly):
    from tests.browser.test_site_hygiene_in_browser import axe_violations

    profile = Profile.objects.get(email="p0@example.com")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(live_server.url + preferences_path(profile=profile))
        page.select_option("select[name=attribute_0]", "monthly")
        page.fill("input[name=attribute_1]", "Lisbon")
        page.click("button[name=save]")
        page.locator("[role=status]").wait_for()
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            from tests.browser.test_site_hygiene_in_browser import SCREENSHOTS

            page.screenshot(
                path=str(SCREENSHOTS / f"preferences-attributes-{width}.png"), full_page=True
            )
            assert axe_violations(page) == [], width
    finally:
        context.close()
    profile.refresh_from_db()
    assert profile.attributes == {"plan": "pro", "frequency": "monthly", "city": "Lisbon"}
    assert Newsletter.objects.get(slug="weekly").editable_attributes[0].key == "frequency"
