"""Staff pages in Chromium: the dashboard, the task queue, subscribers, imports, templates.

Each page is opened at a desktop and a phone width, saved as a screenshot under
var/screenshots/staff-*.png, checked with axe-core (no serious or critical
violation) and for sideways scrolling.
"""

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.durable.models import WorkerProcess
from signalpost.newsletters.models import SubscriberImport, Subscription, Suppression
from signalpost.newsletters.services import email_template_save, subscribe, unsubscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.browser.test_site_hygiene_in_browser import (
    LISTEN_FOR_VIOLATIONS,
    PASSWORD,
    SCREENSHOTS,
    WIDTHS,
    _axe_required,
    axe_violations,
    log_in,
)
from tests.durable_helpers import start_worker, stop
from tests.factories import make_newsletter, make_user
from tests.sending import issue_prepare_rest
from tests.service_exports import MAILCHIMP_UNSUBSCRIBED

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
        found = axe_violations(page)
        if found:
            import tests.axe_probe

            print(name, width, tests.axe_probe.nodes(page))
        findings[label] = (response.status, sideways, found)
    return findings


CLEAN = {label: (200, 0, []) for label in WIDTHS}


def shown_clean_at_each_width(page, name):
    """Screenshot the page as it is at each width; assert no sideways scroll, no violation."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"staff-{name}-{width}.png"), full_page=True)
        assert page.evaluate(SIDEWAYS) == 0, label
        assert axe_violations(page) == [], label


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


def test_the_dashboard_says_a_send_is_preparing_until_its_deliveries_exist(live_server, staff):
    _small, _big, issue = _dashboard_data()
    staff.goto(live_server.url + "/admin/")
    assert "Preparing: 0 recipients so far" in staff.locator("#latest-sends").inner_text()

    issue_prepare_rest(issue=issue)
    staff.goto(live_server.url + "/admin/")
    assert "0.0% · 0 sent · 0 failed of 240" in staff.locator("#latest-sends").inner_text()


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
        assert "Preparing: 0 recipients so far" in staff.locator("#latest-sends").inner_text()
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


# Subscribers


@pytest.fixture
def private_files():
    """Delete what the test's imports stored (the same private storage as the worker's)."""
    yield
    for job in SubscriberImport.objects.all():
        job.file.delete(save=False)
        job.report.delete(save=False)


def test_staff_import_a_csv_and_watch_its_progress_to_the_rejected_rows(
    live_server, staff, private_files, tmp_path
):
    letter = make_newsletter(slug="weekly", name="The Weekly")
    rows = ["email,name"] + [f"reader{n}@example.com,Reader {n}" for n in range(30_000)]
    rows[5] = "not-an-address,Broken"
    content = ("\n".join(rows) + "\n").encode()
    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.goto(f"{live_server.url}/admin/newsletters/newsletter/{letter.pk}/change/")
    staff.get_by_role("link", name="Import CSV").click()
    assert staff.get_by_label("Newsletter").input_value() == str(letter.pk)
    staff.get_by_label("CSV file").set_input_files(
        files=[{"name": "readers.csv", "mimeType": "text/csv", "buffer": content}]
    )
    staff.screenshot(path=str(SCREENSHOTS / "staff-import-form-1280.png"), full_page=True)
    staff.get_by_role("button", name="Start the import").click()
    staff.locator("#import-progress").wait_for()
    assert "Waiting for a worker: 0%" in staff.locator("#import-progress").inner_text()
    staff.evaluate(
        """() => { window.loadedOnce = true; window.seen = [];
        setInterval(() => window.seen.push(Number(
            document.getElementById('import-bar').getAttribute('value'))), 100); }"""
    )

    # A worker records progress once per 1,000 rows; on a quiet machine it can finish
    # between two of the page's polls, so the bar is first shown a recorded mid-way point.
    SubscriberImport.objects.update(rows=12_000)
    staff.wait_for_function("() => window.seen.includes(40)", timeout=10_000)
    worker = start_worker("import", tmp_path)
    try:
        staff.wait_for_function(
            "() => document.getElementById('import-progress').dataset.status === 'done'",
            timeout=90_000,
        )
    finally:
        stop(worker, signal.SIGTERM)

    assert staff.evaluate("window.loadedOnce") is True, "no reload"
    seen = staff.evaluate("window.seen")
    assert any(0 < value < 100 for value in seen), sorted(set(seen))
    text = staff.locator("#import-progress").inner_text()
    assert "Done: 100%" in text
    assert staff.locator("#import-imported").inner_text() == "29999"
    assert staff.locator("#import-rejected").inner_text() == "1"
    for label, width in WIDTHS.items():
        staff.set_viewport_size({"width": width, "height": 900})
        staff.screenshot(path=str(SCREENSHOTS / f"staff-import-done-{width}.png"), full_page=True)
        assert staff.evaluate(SIDEWAYS) == 0, label
        assert axe_violations(staff) == [], label
    with staff.expect_download() as download:
        staff.locator("#import-report").click()
    report = download.value.path().read_text()
    assert download.value.suggested_filename == "readers.rejected.csv"
    assert report.splitlines()[1].startswith("6,not-an-address,")


def test_a_bad_upload_is_named_on_the_import_form(live_server, staff, private_files):
    make_newsletter(slug="weekly", name="The Weekly")
    for label, width in WIDTHS.items():
        staff.set_viewport_size({"width": width, "height": 900})
        staff.goto(live_server.url + "/admin/newsletters/subscriberimport/add/")
        staff.get_by_label("Newsletter").select_option(label="The Weekly")
        staff.get_by_label("CSV file").set_input_files(
            files=[{"name": "empty.csv", "mimeType": "text/csv", "buffer": b""}]
        )
        staff.get_by_role("button", name="Start the import").click()
        assert "The submitted file is empty." in staff.locator("#id_file_error").inner_text()
        staff.screenshot(path=str(SCREENSHOTS / f"staff-import-error-{width}.png"), full_page=True)
        assert staff.evaluate(SIDEWAYS) == 0, label
        assert axe_violations(staff) == [], label


def _people():
    weekly = make_newsletter(slug="weekly", name="The Weekly")
    careful = make_newsletter(slug="careful", name="The Careful", opt_in="double")
    ann = subscribe(email="ann@example.com", name="Ann Lee", newsletter=weekly, source="admin")
    subscribe(email="ann@example.com", newsletter=careful, source="form")
    subscribe(email="bob@example.com", name="Bob Stone", newsletter=weekly, source="form")
    for number in range(30):
        subscribe(email=f"reader{number}@example.com", newsletter=weekly, source="admin")
    Profile.objects.filter(email="ann@example.com").update(attributes={"plan": "pro"})
    return ann.profile


def test_staff_find_someone_and_act_on_their_profile(live_server, staff):
    profile = _people()
    subscriptions = "/admin/newsletters/subscription/"
    assert check(staff, live_server.url, subscriptions, "subscribers") == CLEAN

    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.goto(live_server.url + subscriptions)
    staff.get_by_label("Name, or name=value").fill("plan=pro")
    with staff.expect_navigation():
        staff.get_by_role("button", name="Filter", exact=True).click()
    assert staff.locator("#result_list tbody tr").count() == 2  # Ann's two subscriptions
    staff.locator("#searchbar").fill("stone")
    with staff.expect_navigation():
        staff.locator("#searchbar").press("Enter")
    assert staff.locator("#result_list tbody tr").count() == 0, "both filters hold"
    staff.goto(live_server.url + subscriptions + "?q=stone")
    assert staff.locator("#result_list tbody tr").count() == 1
    with staff.expect_navigation():
        staff.get_by_role("link", name="bob@example.com").click()
    assert "Activity trail" in staff.content()

    profile_page = f"/admin/accounts/profile/{profile.pk}/change/"
    assert check(staff, live_server.url, profile_page, "profile") == CLEAN
    staff.set_viewport_size({"width": 390, "height": 900})
    staff.goto(live_server.url + profile_page)
    with staff.expect_navigation():
        staff.locator("#staff-subscriptions tr", has_text="The Careful").get_by_role(
            "button", name="Resend confirmation"
        ).click()
    assert "is on its way" in staff.locator(".messagelist").inner_text()
    with staff.expect_navigation():
        staff.locator("#staff-subscriptions tr", has_text="The Weekly").get_by_role(
            "button", name="Unsubscribe"
        ).click()
    assert "Unsubscribed from The Weekly." in staff.locator(".messagelist").inner_text()
    assert "Unsubscribed" in staff.locator("#activity-trail").inner_text()
    staff.screenshot(path=str(SCREENSHOTS / "staff-profile-after-actions-390.png"), full_page=True)

    staff.get_by_role("link", name="Erase this person…").click()
    assert (
        check(staff, live_server.url, f"/admin/accounts/profile/{profile.pk}/erase/", "erase")
        == CLEAN
    )
    with staff.expect_navigation():
        staff.get_by_role("button", name="Yes, erase ann@example.com").click()
    assert "Erased ann@example.com" in staff.locator(".messagelist").inner_text()
    assert not Profile.objects.filter(email="ann@example.com").exists()


# Templates


def test_staff_edit_preview_and_revert_an_email_template(live_server, staff):
    letter = make_newsletter(slug="weekly", name="The Weekly")
    templates = "/admin/newsletters/emailtemplate/"
    assert check(staff, live_server.url, templates + "add/", "template-add") == CLEAN

    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.goto(live_server.url + templates + "add/")
    with staff.expect_navigation():
        staff.get_by_role("link", name="welcome.html").click()
    assert "emails/base.html" in staff.get_by_label("Body").input_value()
    staff.get_by_label("Newsletter").select_option(label="The Weekly")
    staff.get_by_label("Name").select_option("welcome.html")
    staff.get_by_label("Body").fill("<p>Hello {{ profile.name }}</p>")  # no unsubscribe link
    with staff.expect_navigation():
        staff.get_by_role("button", name="Save and continue editing").click()
    assert "must show the unsubscribe link" in staff.locator(".errorlist").inner_text()
    staff.screenshot(path=str(SCREENSHOTS / "staff-template-refused-1280.png"), full_page=True)

    first = (
        '{% extends "emails/base.html" %}'
        "{% block body %}<h1>First {{ profile.name }}</h1>{% endblock %}"
    )
    staff.get_by_label("Body").fill(first)
    with staff.expect_navigation():
        staff.get_by_role("button", name="Save and continue editing").click()
    staff.get_by_label("Body").fill(first.replace("First", "Second"))
    with staff.expect_navigation():
        staff.get_by_role("button", name="Save and continue editing").click()
    preview = staff.frame_locator("iframe[title='Preview at phone width']")
    assert preview.locator("h1").inner_text() == "Second Sam Sample"
    assert preview.get_by_role("link", name="Unsubscribe").count() == 1

    # Previewing an edit opens a tab with the email as typed; nothing is saved.
    staff.get_by_label("Body").fill(first.replace("First", "Third"))
    with staff.expect_popup() as popup_info:
        staff.get_by_role("button", name="Preview without saving").click()
    popup = popup_info.value
    popup.wait_for_load_state()
    frame = popup.frame_locator("iframe[title='Preview at phone width']")
    assert frame.locator("h1").inner_text() == "Third Sam Sample"
    shown_clean_at_each_width(popup, "template-preview")
    popup.close()
    assert "Second" in letter.email_templates.get().body, "not saved"

    change = staff.url.removeprefix(live_server.url)
    assert check(staff, live_server.url, change, "template-change") == CLEAN
    staff.set_viewport_size({"width": 390, "height": 900})
    staff.goto(live_server.url + change)
    with staff.expect_navigation():
        staff.get_by_role("link", name="Revert to this").click()
    assert (
        check(staff, live_server.url, staff.url.removeprefix(live_server.url), "template-revert")
        == CLEAN
    )
    with staff.expect_navigation():
        staff.get_by_role("button", name="Yes, revert").click()
    assert "Reverted to the version of" in staff.locator(".messagelist").inner_text()
    preview = staff.frame_locator("iframe[title='Preview at phone width']")
    assert preview.locator("h1").inner_text() == "First Sam Sample"
    assert letter.email_templates.get().versions.count() == 3
    staff.screenshot(path=str(SCREENSHOTS / "staff-template-reverted-390.png"), full_page=True)


def test_the_template_preview_shows_under_the_sites_own_csp(live_server, page):
    """Without bypassing the CSP: the sandboxed srcdoc preview renders, nothing is blocked."""
    letter = make_newsletter(slug="weekly", name="The Weekly")
    make_user(username="staff", password=PASSWORD, is_staff=True, is_superuser=True)
    template = email_template_save(
        newsletter=letter,
        name="welcome.html",
        body='{% extends "emails/base.html" %}{% block body %}<h1>Hi</h1>{% endblock %}',
        user=None,
    )
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/newsletters/emailtemplate/{template.pk}/change/")

    frame = page.frame_locator("iframe[title='Preview at desktop width']")
    assert frame.locator("h1").inner_text() == "Hi"
    assert frame.locator(".card").evaluate("e => getComputedStyle(e).backgroundColor") == (
        "rgb(255, 255, 255)"
    ), "the email's own styles apply"
    assert page.evaluate("window.__cspViolations") == []


def test_staff_import_a_mailchimp_export_and_find_its_suppressed_people(
    live_server, staff, private_files, tmp_path
):
    letter = make_newsletter(slug="weekly", name="The Weekly")
    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.goto(f"{live_server.url}/admin/newsletters/subscriberimport/add/?newsletter={letter.pk}")
    staff.get_by_label("CSV file").set_input_files(
        files=[
            {
                "name": "unsubscribed_members_export.csv",
                "mimeType": "text/csv",
                "buffer": MAILCHIMP_UNSUBSCRIBED.encode(),
            }
        ]
    )
    assert staff.get_by_label("Format").input_value() == "", "recognised from the columns"
    staff.screenshot(path=str(SCREENSHOTS / "staff-import-format-1280.png"), full_page=True)
    staff.get_by_role("button", name="Start the import").click()
    staff.locator("#import-progress").wait_for()
    worker = start_worker("mailchimp", tmp_path)
    try:
        staff.wait_for_function(
            "() => document.getElementById('import-progress').dataset.status === 'done'",
            timeout=60_000,
        )
    finally:
        stop(worker, signal.SIGTERM)
    assert staff.locator("#import-suppressed").inner_text() == "2"
    assert (
        "Format: mailchimp (recognised from its columns)."
        in staff.locator("#import-format").inner_text()
    )
    shown_clean_at_each_width(staff, "import-suppressed")
    assert Suppression.objects.count() == 2

    assert check(staff, live_server.url, "/admin/newsletters/suppression/", "suppressions") == CLEAN
    staff.locator("#searchbar").fill("angry")
    staff.locator("#searchbar").press("Enter")
    staff.wait_for_load_state()
    rows = staff.locator("#result_list tbody tr").all_inner_texts()
    assert len(rows) == 1 and "angry@example.com" in rows[0] and "Every newsletter" in rows[0]
    with staff.expect_download() as download:
        staff.locator("#export-suppressions").click()
    exported = download.value.path().read_text().splitlines()
    assert exported[0] == "email,email_sha256,newsletter,reason,source,suppressed_at"
    assert len(exported) == 2 and exported[1].startswith("angry@example.com,")
