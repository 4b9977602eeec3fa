"""The embeddable subscribe form in Chromium, on pages served by two other loopback origins.

A static site on one port (listed in the newsletter's allowed origins) and one on another
(not listed) carry the snippets exactly as the staff page offers them. The listed site's
plain form lands on Signalpost's page with a link back, its script answers in place, its
iframe shows the form; the confirmation email arrives at the SMTP sink. The other site is
refused: CORS stops the script (which says so), the plain form gets no link back, and the
browser will not show the iframe.
"""

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from signalpost.newsletters.models import Subscription
from tests.browser.test_site_hygiene_in_browser import _axe_required, axe_violations
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter, make_user

try:
    from playwright.sync_api import expect
except ImportError:  # The `browser` fixture skips, or fails in CI, with how to install.
    expect = None

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-editor-password"
WIDTHS = (1280, 390)
PAGE = "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
PAGE += "</head><body><main><h1>{title}</h1>{snippet}</main></body></html>"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class StaticSite:
    """Another website: a directory served over HTTP on a loopback port of its own."""

    def __init__(self, directory):
        self.directory = directory
        directory.mkdir()
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, name, title, snippet):
        (self.directory / name).write_text(PAGE.format(title=title, snippet=snippet))
        return f"{self.origin}/{name}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sites(tmp_path):
    listed, stranger = StaticSite(tmp_path / "listed"), StaticSite(tmp_path / "stranger")
    try:
        yield listed, stranger
    finally:
        listed.stop()
        stranger.stop()


@pytest.fixture
def weekly(live_server, sites, smtp_inbox, settings):
    settings.SIGNALPOST_SITE_URL = live_server.url  # the snippets name the live server
    listed, _ = sites
    make_user(username="editor", password=PASSWORD, is_staff=True, is_superuser=True)
    return make_newsletter(
        slug="weekly",
        name="The Weekly",
        description="A letter every Friday.",
        embed_allowed=True,
        embed_origins=listed.origin,
    )


def staff_snippets(browser, base, newsletter, screenshot):
    """Log in, open the newsletter's embed page at both widths (screenshots, axe), and
    return its three snippets as the page's boxes hold them, with the axe findings."""
    _axe_required()
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    problems = []
    try:
        page = context.new_page()
        path = f"/admin/newsletters/newsletter/{newsletter.pk}/embed/"
        page.goto(f"{base}/admin/login/?next={path}")
        page.get_by_label("Username").fill("editor")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(base + path)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(base + path)
            expect(page.get_by_role("button", name="Copy plain form")).to_be_visible()
            screenshot(page, f"staff-snippets-{width}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                problems.append(f"staff page at {width}px scrolls sideways by {overflow}px")
            problems += [f"staff page at {width}px: {found}" for found in axe_violations(page)]
        snippets = {
            key: page.locator(f"#snippet-{key}").input_value()
            for key in ("form", "script", "iframe")
        }
        page.get_by_role("button", name="Copy iframe").click()
        expect(page.locator('[data-copied-for="snippet-iframe"]')).to_have_text(
            re.compile("Copied|Selected")
        )
    finally:
        context.close()
    return snippets, problems


def looked_at(page, screenshot, name):
    """Screenshots of what ``page`` shows at both widths, and its axe findings."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"{name}-{width}")
        problems += [f"{name} at {width}px: {found}" for found in axe_violations(page)]
    return problems


@pytest.fixture
def axe_context(browser):
    """A browser context whose pages let axe-core in (Signalpost's CSP forbids it)."""
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


def test_a_listed_site_subscribes_through_each_snippet_and_a_stranger_is_refused(
    live_server, browser, axe_context, sites, weekly, smtp_inbox, screenshot
):
    listed, stranger = sites
    snippets, problems = staff_snippets(browser, live_server.url, weekly, screenshot)
    page = axe_context.new_page()

    # The plain form, without JavaScript's help: Signalpost's page, and a link back.
    home = listed.publish("index.html", "A blog", snippets["form"])
    page.goto(home)
    page.get_by_label("Email address").fill("plain@example.com")
    page.get_by_role("button", name="Subscribe to The Weekly").click()
    expect(page.get_by_role("heading", name="Check your inbox", level=1)).to_be_visible()
    assert page.url == f"{live_server.url}/embed/weekly/"
    expect(page.get_by_role("status")).to_contain_text("plain@example.com")
    back = page.get_by_role("link", name=f"Back to {listed.origin.removeprefix('http://')}")
    problems += looked_at(page, screenshot, "landing")
    back.click()
    page.wait_for_url(f"{listed.origin}/")
    expect(page.get_by_role("heading", name="A blog")).to_be_visible()

    # The form and script: the answer appears beside the form; the page stays.
    script_page = listed.publish("script.html", "A blog with the script", snippets["script"])
    page.goto(script_page)
    page.get_by_label("Email address").fill("script@example.com")
    page.get_by_role("button", name="Subscribe to The Weekly").click()
    expect(page.locator("[data-signalpost-answer]")).to_contain_text(
        "We sent a confirmation link to script@example.com"
    )
    assert page.url == script_page

    # The iframe: the form of Signalpost's page inside the blog's.
    page.goto(listed.publish("iframe.html", "A blog with the iframe", snippets["iframe"]))
    frame = page.frame_locator("iframe")
    frame.get_by_label("Email address").fill("framed@example.com")
    screenshot(page, "iframe-on-listed-site")
    frame.get_by_role("button", name="Subscribe").click()
    expect(frame.get_by_role("heading", name="Check your inbox")).to_be_visible()
    screenshot(page, "iframe-answered")

    page.goto(f"{live_server.url}/embed/weekly/")
    problems += looked_at(page, screenshot, "iframe-form")

    # Each confirmation email arrives; every subscription waits for its confirmation.
    run_form_requests()
    run_worker_until_idle()
    addresses = ["plain@example.com", "script@example.com", "framed@example.com"]
    assert sorted(rcpt for envelope in smtp_inbox.envelopes for rcpt in envelope.rcpt_tos) == (
        sorted(addresses)
    )
    for message in smtp_inbox.messages:
        assert "/n/weekly/confirm/" in message.get_body(("plain",)).get_content()
    statuses = set(Subscription.objects.values_list("status", "source"))
    assert statuses == {(Subscription.Status.PENDING, Subscription.Source.EMBED)}

    # A site not on the list: CORS stops the script, which says so.
    page.goto(stranger.publish("script.html", "Someone else", snippets["script"]))
    page.get_by_label("Email address").fill("stranger-script@example.com")
    page.get_by_role("button", name="Subscribe to The Weekly").click()
    expect(page.locator("[data-signalpost-answer]")).to_contain_text(
        "could not be sent from this page"
    )
    # Its plain form is refused on Signalpost's page, with no link back.
    page.goto(stranger.publish("index.html", "Someone else", snippets["form"]))
    page.get_by_label("Email address").fill("stranger-plain@example.com")
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.get_by_role("button", name="Subscribe to The Weekly").click()
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="Not open to this website")).to_be_visible()
    assert page.get_by_role("link", name="Back to").count() == 0
    assert stranger.origin not in page.content()
    problems += looked_at(page, screenshot, "refused")
    # Its iframe stays empty: the browser obeys frame-ancestors.
    page.goto(stranger.publish("iframe.html", "Someone else", snippets["iframe"]))
    page.wait_for_timeout(500)
    frame = page.frames[1]
    assert "/embed/weekly/" in frame.url or frame.url.startswith("chrome-error:")
    assert frame.locator("input[name=user_email]").count() == 0

    run_form_requests()
    assert not Subscription.objects.filter(profile__email__startswith="stranger").exists()
    assert problems == []
