"""The engagement pages in Chromium: an issue's report and the preference center's notice.

Each at a desktop and a phone width: screenshot under var/screenshots/staff-*.png, no
serious or critical axe-core violation, no sideways scrolling.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.engagement.models import Engagement
from signalpost.newsletters import tokens
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.browser.test_staff_pages_in_browser import CLEAN, check, staff  # noqa: F401
from tests.factories import make_newsletter
from tests.sending import issue_prepare_rest

pytestmark = pytest.mark.django_db(transaction=True)

BODY = (
    "Read [the long article on a site with a long address]"
    "(https://www.example.com/2026/12/02/a-very-long-path/that-goes-on-and-on?utm_source=x&ref=1)"
    ", [the second](https://example.org/b) and [the third](https://example.net/c)."
)


def _sent(letter, subject, started):
    issue = issue_create(newsletter=letter, subject=subject, body_markdown=BODY)
    issue_send(issue=issue)
    issue_prepare_rest(issue=issue)
    Issue.objects.filter(pk=issue.pk).update(
        status="sent", sending_started_at=started, sent_at=started + timedelta(minutes=1)
    )
    Delivery.objects.filter(issue=issue).update(status="sent", sent_at=started)
    return Issue.objects.get(pk=issue.pk)


def _report_data():
    letter = make_newsletter(slug="weekly", name="The Weekly", track_opens=True)
    for number in range(12):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    now = timezone.now()
    _sent(letter, "Last week's issue", now - timedelta(days=7))
    issue = _sent(
        letter, "This week: a subject long enough to wrap on a phone", now - timedelta(hours=50)
    )
    profiles = list(Profile.objects.order_by("id"))
    rows = []
    for number, profile in enumerate(profiles[:9]):
        at = issue.sending_started_at + timedelta(hours=number * 3 % 40, minutes=5)
        rows.append(
            Engagement(newsletter=letter, issue=issue, profile=profile, kind="click",
                       link_index=number % 3, is_human=True, is_first=True, occurred_at=at)
        )  # fmt: skip
        rows.append(
            Engagement(newsletter=letter, issue=issue, profile=None, kind="click",
                       link_index=number % 3, is_human=False, machine="burst",
                       occurred_at=issue.sending_started_at)
        )  # fmt: skip
    Engagement.objects.bulk_create(rows)
    return issue


def test_the_issue_report_reads_right_at_desktop_and_phone_widths(live_server, staff):  # noqa: F811
    issue = _report_data()
    path = f"/admin/publishing/issue/{issue.pk}/report/"
    assert check(staff, live_server.url, path, "issue-report") == CLEAN
    staff.goto(live_server.url + path)
    assert staff.locator("#report-clicks").inner_text() == "9"
    assert staff.locator("#report-filtered-clicks").inner_text() == "9"
    assert staff.locator("svg.signalpost-hours rect").count() > 0
    assert "Last week's issue" in staff.locator("#report-previous").inner_text()
    # On a phone the comparison is one labelled card per issue, not a table that scrolls
    # sideways inside its box.
    staff.set_viewport_size({"width": 390, "height": 900})
    table = staff.locator("#report-previous")
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    labels = (
        table.locator("tbody tr")
        .first.locator("td")
        .evaluate_all("cells => cells.map(c => getComputedStyle(c, '::before').content)")
    )
    assert labels == ['"Delivered"', '"People who clicked"', '"Click rate"', '"Unsubscribed"']


def test_the_preference_centers_notice_reads_right_at_each_width(live_server, staff):  # noqa: F811
    letter = make_newsletter(slug="weekly", name="The Weekly", track_opens=True)
    subscribe(email="ann@example.com", newsletter=letter, source="admin")
    profile = Profile.objects.get(email="ann@example.com")
    token = tokens.token_make(purpose=tokens.PREFERENCES, profile=profile)
    path = f"/preferences/{token}/"
    assert check(staff, live_server.url, path, "preferences-engagement") == CLEAN
    staff.goto(live_server.url + path)
    assert "What we record when you read" in staff.content()
