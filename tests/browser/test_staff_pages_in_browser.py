"""Staff pages in Chromium: the dashboard, the task queue, subscribers, imports, templates.

Each page is opened at a desktop and a phone width, saved as a screenshot under
var/screenshots/staff-*.png, checked with axe-core (no serious or critical
violation) and for sideways scrolling.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from signalpost.durable.models import WorkerProcess
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.browser.test_site_hygiene_in_browser import (
    PASSWORD,
    SCREENSHOTS,
    WIDTHS,
    _axe_required,
    axe_violations,
    log_in,
)
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
# The elements that stick out to the right, to say what makes a page scroll sideways.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1)
    .slice(0, 15)
    .map((el) => `${el.tagName}#${el.id}.${el.className}`);
}"""


@pytest.fixture
def staff(browser, live_server):
    """A logged-in superuser's page (CSP bypassed so axe-core can be injected)."""
    make_user(username="staff", password=PASSWORD, is_staff=True, is_superuser=True)
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    log_in(page, live_server.url)
    try:
        yield page
    finally:
        context.close()


def check(page, base, path, name, *, ready=None):
    """Open ``path`` at each width: screenshot, axe-core, sideways scrolling; return findings."""
    _axe_required()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    findings = {}
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        response = page.goto(base + path)
        if ready:
            ready(page)
        page.screenshot(path=str(SCREENSHOTS / f"staff-{name}-{width}.png"), full_page=True)
        sideways = page.evaluate(SIDEWAYS)
        if sideways:
            print(name, width, "sticking out:", page.evaluate(OVERFLOW))
        findings[label] = (response.status, sideways, axe_violations(page))
    return findings


CLEAN = {label: (200, 0, []) for label in WIDTHS}


def _dashboard_data():
    small = make_newsletter(slug="small", name="A Small List")
    big = make_newsletter(slug="big", name="The Big List")
    for number in range(3):
        subscribe(email=f"small{number}@example.com", newsletter=small, source="admin")
    for number in range(240):
        subscribe(email=f"big{number}@example.com", newsletter=big, source="admin")
    Subscription.objects.filter(newsletter=big).update(
        subscribed_at=timezone.now() - timedelta(days=40)
    )
    unsubscribe(email="small2@example.com", newsletter=small, reason="test")
    issue = issue_create(
        newsletter=big, subject="A rather long subject line for the weekly", body_markdown="Hi."
    )
    issue_send(issue=issue)
    return small, big, issue


def test_the_dashboard_reads_right_at_desktop_and_phone_widths(live_server, staff):
    _dashboard_data()

    assert check(staff, live_server.url, "/admin/", "dashboard") == CLEAN

    for width in WIDTHS.values():
        staff.set_viewport_size({"width": width, "height": 900})
        staff.goto(live_server.url + "/admin/")
        # A list of 2 is drawn on its own scale: its axis is labelled 0, 1, 2, not 0 … 240.
        small = staff.locator(".signalpost-chart", has_text="A Small List")
        labels = small.locator("svg text").all_text_contents()
        assert {"0", "1", "2"} <= set(labels), labels
        assert "Subscribers" in labels and "Day" in labels
        big = staff.locator(".signalpost-chart", has_text="The Big List")
        assert {"0", "100", "200", "300"} <= set(big.locator("svg text").all_text_contents())
        assert "The Big List: 240 active" in big.inner_text()
        # Headers of the latest sends stay on one line at any width.
        for header in staff.locator("#latest-sends th").all():
            box = header.bounding_box()
            line = float(header.evaluate("h => parseFloat(getComputedStyle(h).lineHeight) || 16"))
            assert box["height"] < 2.5 * line, (width, header.inner_text(), box)
        assert "0.0% · 0 sent · 0 failed of 240" in staff.locator("#latest-sends").inner_text()
    assert "3 new" in staff.locator("#flow-summary").inner_text()
    assert "1 lost" in staff.locator("#flow-summary").inner_text()


def test_the_queue_page_sits_in_the_admin_and_refreshes_itself(live_server, staff):
    WorkerProcess.objects.create(
        worker_id="worker-with-a-long-name-1", hostname="host.example.com", pid=1234,
        queues="default,issues", started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip

    assert check(staff, live_server.url, "/admin/queue/", "queue") == CLEAN

    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.goto(live_server.url + "/admin/queue/")
    assert staff.locator("#nav-sidebar").count() == 1, "the admin's sidebar"
    before = staff.locator("#count-waiting").inner_text()
    issue = issue_create(newsletter=make_newsletter(), subject="Queued", body_markdown="x")
    subscribe(email="reader@example.com", newsletter=issue.newsletter, source="admin")
    issue_send(issue=issue)  # queues its preparation: one more waiting task
    staff.wait_for_function(
        f"() => document.getElementById('count-waiting').textContent !== '{before}'",
        timeout=15_000,
    )
    assert Issue.objects.filter(pk=issue.pk).exists()
    # Unticking the box stops the refreshing.
    staff.get_by_label("Refresh every 5 seconds").uncheck()
    now = staff.locator("#as-of").inner_text()
    staff.wait_for_timeout(6_000)
    assert staff.locator("#as-of").inner_text() == now
