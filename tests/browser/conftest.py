"""Fixtures for the real-browser tests: Debian's Chromium driven by Playwright.

The tests skip when Chromium or Playwright is missing, unless
``SIGNALPOST_REQUIRE_BROWSER=1`` (set by CI), in which case they fail.
Playwright never downloads a browser here: it drives ``/usr/bin/chromium``.
"""

import importlib.util
import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install Chromium with `apt-get install -y chromium` and Playwright with "
    "`.venv/bin/pip install -e '.[dev]'` (never `playwright install`)"
)


def browser_missing():
    """Return why the browser tests cannot run here, or ``None`` when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} does not exist"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the tests of a module, closed after them."""
    missing = browser_missing()
    if missing is not None:
        message = f"Browser tests need a browser: {missing}; {INSTALL_HINT}."
        if os.environ.get("SIGNALPOST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message} (SIGNALPOST_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)

    from playwright.sync_api import sync_playwright

    # Playwright's sync API marks an asyncio loop as running in this thread
    # while it is active, so Django would refuse the ORM calls that the tests
    # and the database teardown make here. None of them runs inside that loop.
    # Allowed only while the browser is up, not for the rest of the session.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A fresh page in a context of its own (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(request):
    """Save a full-page screenshot as test-artifacts/screenshots/<test>-<step>.png."""
    directory = request.config.rootpath / "test-artifacts" / "screenshots"
    test_name = re.sub(r"[^\w.-]+", "_", request.node.name)

    def take(page, step):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{test_name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
