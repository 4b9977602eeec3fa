"""A German reader in Chromium: the subscribe page and a German newsletter's email, at 1280
and 390 px, with no sideways scrolling and no serious axe-core violation (``<html lang>``
included); then the switcher, without JavaScript, turns the same page Spanish."""

import pytest

from signalpost.newsletters import emails
from signalpost.newsletters.services import subscribe
from tests.browser.test_site_hygiene_in_browser import _axe_required, fit_and_axe_problems
from tests.factories import make_newsletter

try:
    from playwright.sync_api import expect
except ImportError:  # The `browser` fixture skips, or fails in CI, with how to install.
    expect = None

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = (1280, 390)


@pytest.fixture
def zeitung(db):
    return make_newsletter(
        slug="zeitung",
        name="Die Zeitung",
        description="Jeden Freitag das Wichtigste der Woche.",
        language="de",
        opt_in="double",
    )


@pytest.fixture
def german_page(browser):
    """A page of a browser set to German, whose CSP lets axe-core in."""
    context = browser.new_context(bypass_csp=True, locale="de-DE", java_script_enabled=True)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def problems_at_each_width(page, name, screenshot):
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"{name}-{width}")
        problems += fit_and_axe_problems(page, name, width)
    return problems


def test_the_subscribe_page_speaks_german_to_a_german_browser(
    live_server, german_page, screenshot, zeitung
):
    _axe_required()
    page = german_page
    page.goto(f"{live_server.url}/subscribe/?newsletter=zeitung")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name="Abonnieren", level=1)).to_be_visible()
    problems = problems_at_each_width(page, "subscribe-de", screenshot)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("E-Mail-Adresse").fill("keine-adresse")
    page.locator("main").get_by_role("button", name="Abonnieren").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "user_email: Das ist keine gültige E-Mail-Adresse."
    )
    problems += problems_at_each_width(page, "subscribe-de-error", screenshot)
    assert problems == []


def test_the_switcher_changes_the_language_without_javascript(
    live_server, browser, screenshot, zeitung
):
    context = browser.new_context(locale="de-DE", java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/subscribe/?newsletter=zeitung")
        page.get_by_label("Sprache").select_option("es")
        page.get_by_role("button", name="Sprache ändern").click()
        page.wait_for_url(f"{live_server.url}/subscribe/?newsletter=zeitung")
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(page.get_by_role("heading", name="Suscribirse", level=1)).to_be_visible()
        expect(page.get_by_label("Idioma")).to_have_value("es")
        screenshot(page, "switched-to-spanish")
        page.goto(f"{live_server.url}/")
        expect(page.locator("html")).to_have_attribute("lang", "es")
    finally:
        context.close()


def test_a_german_newsletters_email_reads_well_on_a_phone_and_a_desktop(
    german_page, screenshot, zeitung
):
    _axe_required()
    subscription = subscribe(email="ann@example.com", newsletter=zeitung, source="form", name="Ann")
    message = emails.confirmation_message(subscription=subscription, idempotency_key="shot")
    page = german_page
    page.set_content(message.html, wait_until="load")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name="Bestätigen Sie Ihr Abonnement")).to_be_visible()
    expect(page.get_by_role("link", name="Abonnement bestätigen")).to_be_visible()
    assert problems_at_each_width(page, "email-confirmation-de", screenshot) == []
