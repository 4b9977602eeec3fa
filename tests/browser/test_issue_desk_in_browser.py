"""The writer's desk in Chromium: write with the preview following the text, send a test,
send after one confirmation, pause, resume and cancel; each page at 1280 and 390 px with
no sideways scrolling and no serious or critical axe-core violation."""

import io

import pytest
from PIL import Image

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create
from tests.browser.test_site_hygiene_in_browser import (
    LISTEN_FOR_VIOLATIONS,
    _axe_required,
    fit_and_axe_problems,
)
from tests.factories import make_newsletter, make_user
from tests.sending import issue_prepare_rest

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-editor-password"
WIDTHS = (1280, 390)


@pytest.fixture
def draft(db):
    make_user(
        username="editor",
        email="editor@example.com",
        password=PASSWORD,
        is_staff=True,
        is_superuser=True,
    )
    letter = make_newsletter(slug="weekly", name="The Weekly")
    for number in range(12):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    return issue_create(
        newsletter=letter, subject="Spring letter", body_markdown="Hello{{ name }}, *spring*."
    )


def log_in(page, base, next_path):
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.get_by_label("Username").fill("editor")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}{next_path}")


def fits_and_passes_axe(browser, base, path, name, screenshot):
    """Open ``path`` (logged in) at each width in a context that lets axe-core in; save a
    screenshot; return the problems found: sideways scrolling and axe violations."""
    _axe_required()
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    problems = []
    try:
        page = context.new_page()
        log_in(page, base, path)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(base + path)
            screenshot(page, f"{name}-{width}")
            problems += fit_and_axe_problems(page, name, width)
    finally:
        context.close()
    return problems


def png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_preview_follows_the_text_as_it_is_typed(
    live_server, page, draft, screenshot, settings, tmp_path
):
    settings.SIGNALPOST_SITE_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    path = f"/admin/publishing/issue/{draft.pk}/write/"
    log_in(page, live_server.url, path)
    page.set_viewport_size({"width": 1280, "height": 900})
    frame = page.frame_locator("#preview-frame")
    assert "Hello Ada" in frame.locator("body").inner_text(), "the sample reader's name"
    assert "The Weekly" in frame.locator("body").inner_text(), "the newsletter's template"

    page.get_by_label("Body (Markdown)").fill("## A heading typed now\n\nAnd a **bold** line.")
    frame.locator("h2", has_text="A heading typed now").wait_for()
    assert page.locator("#preview-status").inner_text() == "Up to date."
    page.get_by_label("Subject").fill("")
    page.locator("#subject-errors .errorlist").wait_for()
    page.get_by_label("Subject").fill("Spring letter, revised")
    page.locator("#preview-subject", has_text="Spring letter, revised").wait_for()
    assert page.locator("#preview-text").inner_text() == "And a bold line.", "first sentence"
    page.get_by_label("Preview text").fill("Inside: <b>tulips</b> & more")
    page.locator("#preview-text", has_text="Inside: <b>tulips</b> & more").wait_for()
    hidden = frame.locator("div.preview").evaluate("div => div.textContent")
    assert hidden.startswith("Inside: <b>tulips</b> & more"), "the email's hidden preheader"
    page.get_by_label("Image description").fill("A blue field")
    page.get_by_label("Add an image").set_input_files(
        files=[{"name": "field.png", "mimeType": "image/png", "buffer": png(2400, 800)}]
    )
    frame.locator('img[alt="A blue field"]').wait_for()
    assert "![A blue field](" in page.get_by_label("Body (Markdown)").input_value()
    width = frame.locator('img[alt="A blue field"]').evaluate("img => img.naturalWidth")
    assert width == 1200, "resized once, and loaded from the site under its CSP"
    screenshot(page, "typed-1280")
    assert page.evaluate("window.__cspViolations") == [], "the frame and script obey the CSP"
    assert Issue.objects.get(pk=draft.pk).subject == "Spring letter", "typing saves nothing"

    page.set_viewport_size({"width": 390, "height": 900})
    page.get_by_label("Phone (375 px)").check()
    screenshot(page, "typed-390")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}{path}")
    saved = Issue.objects.get(pk=draft.pk)
    assert (saved.subject, saved.preview_text) == (
        "Spring letter, revised",
        "Inside: <b>tulips</b> & more",
    )


def test_test_send_confirmed_send_pause_resume_and_cancel(
    live_server, page, draft, screenshot, smtp_inbox
):
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    change = f"/admin/publishing/issue/{draft.pk}/change/"
    log_in(page, live_server.url, change)
    assert "12 active subscribers now" in page.content()

    page.get_by_role("link", name="Send a test…").click()
    page.get_by_label("Send a test to").fill("editor@example.com\nproof@example.org")
    page.get_by_role("button", name="Send the test").click()
    page.wait_for_url(f"{live_server.url}{change}")
    assert "Test sent to editor@example.com, proof@example.org" in page.content()
    assert sorted(m["To"] for m in smtp_inbox.wait_for(2)) == [
        "editor@example.com",
        "proof@example.org",
    ]

    page.get_by_role("link", name="Send or schedule…").click()
    assert page.locator("#recipient-count").inner_text() == "12"
    screenshot(page, "confirm-1024")
    page.get_by_role("button", name="Send now to 12 subscribers").click()
    page.wait_for_url(f"{live_server.url}{change}")
    assert "Sending to the subscribers active now" in page.content()
    issue_prepare_rest(issue=draft)  # the workers' part, which this test runs without

    page.get_by_role("button", name="Pause the send").click()
    page.wait_for_url(f"{live_server.url}{change}")
    assert Issue.objects.get(pk=draft.pk).status == "paused"
    screenshot(page, "paused-1024")
    page.get_by_role("button", name="Resume the send").click()
    page.wait_for_url(f"{live_server.url}{change}")
    assert Issue.objects.get(pk=draft.pk).status == "sending"

    page.get_by_role("link", name="Cancel the send…").click()
    page.get_by_role("button", name="Cancel the send").click()
    page.wait_for_url(f"{live_server.url}{change}")
    assert Issue.objects.get(pk=draft.pk).status == "cancelled"
    assert page.locator("#progress-cancelled").inner_text() == "12"
    assert page.evaluate("window.__cspViolations") == []


def test_the_desk_pages_fit_a_phone_and_pass_axe(live_server, browser, draft, screenshot):
    pk = draft.pk
    pages = {
        "write": f"/admin/publishing/issue/{pk}/write/",
        "send": f"/admin/publishing/issue/{pk}/send/",
        "test": f"/admin/publishing/issue/{pk}/test/",
        "change-draft": f"/admin/publishing/issue/{pk}/change/",
    }
    problems = []
    for name, path in pages.items():
        problems += fits_and_passes_axe(browser, live_server.url, path, name, screenshot)
    from signalpost.publishing.services import issue_pause, issue_send

    issue_send(issue=draft)
    problems += fits_and_passes_axe(
        browser, live_server.url, pages["change-draft"], "change-sending", screenshot
    )
    problems += fits_and_passes_axe(
        browser, live_server.url, f"/admin/publishing/issue/{pk}/cancel/", "cancel", screenshot
    )
    issue_pause(issue=draft)
    problems += fits_and_passes_axe(
        browser, live_server.url, pages["change-draft"], "change-paused", screenshot
    )
    assert problems == []


def test_a_test_to_a_suppressed_address_is_refused_by_name_at_each_width(
    live_server, browser, draft, screenshot, smtp_inbox
):
    from signalpost.newsletters.suppressions import suppressions_add

    suppressions_add(
        entries=[("gone@example.com", "unsubscribed", None)],
        newsletter=draft.newsletter,
        source="import:mailchimp",
    )
    path = f"/admin/publishing/issue/{draft.pk}/test/"
    _axe_required()
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    problems = []
    try:
        page = context.new_page()
        log_in(page, live_server.url, path)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + path)
            page.get_by_label("Send a test to").fill("gone@example.com\nproof@example.org")
            with page.expect_navigation():
                page.get_by_role("button", name="Send the test").click()
            text = page.content()
            screenshot(page, f"refused-{width}")
            assert "Not sent to gone@example.com: this address is on the suppression list" in text
            assert "Test sent to proof@example.org." in text
            problems += fit_and_axe_problems(page, "test refused", width)
    finally:
        context.close()
    assert problems == []
    assert [m["To"] for m in smtp_inbox.wait_for(2)] == ["proof@example.org"] * 2
