import pytest
from django.core.cache import cache
from django.utils import translation

from signalpost.engagement import selectors as engagement_selectors
from tests.factories import make_newsletter
from tests.mail import smtp_mailers, smtp_server_start


@pytest.fixture(autouse=True)
def clear_cache():
    """Rate-limit counters live in the cache: each test starts from none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def tracked_links_read_afresh():
    """The redirect keeps issues' link lists per process (engagement.selectors): ids come back
    after a test's database is emptied, so each test starts with none kept."""
    engagement_selectors._links_cache.clear()
    yield
    engagement_selectors._links_cache.clear()


@pytest.fixture(autouse=True)
def default_language():
    """A request through the test client leaves its language active in this thread (Django's
    LocaleMiddleware activates per request and never resets): each test starts from none."""
    translation.deactivate()
    yield
    translation.deactivate()


# Markdown renders under a deadline (SIGNALPOST_MARKDOWN_RENDER_TIMEOUT, 1.5 s, the start of
# a renderer child included) that an ordinary body misses on a machine loaded by other test
# runs. Tests get a generous one; the tests of the deadline set their own, the shipped one
# included (tests/test_markdown_rendering.py).
GENEROUS_RENDER_TIMEOUT = 30


@pytest.fixture(autouse=True)
def generous_render_deadline(settings):
    settings.SIGNALPOST_MARKDOWN_RENDER_TIMEOUT = GENEROUS_RENDER_TIMEOUT


@pytest.fixture
def newsletter(db):
    """A public, single opt-in newsletter."""
    return make_newsletter(slug="weekly", name="The Weekly")


@pytest.fixture
def double_opt_in_newsletter(db):
    return make_newsletter(
        slug="careful",
        name="The Careful",
        opt_in="double",
        sender_name="Careful Editors",
        sender_email="editors@careful.example.com",
        reply_to="letters@careful.example.com",
    )


@pytest.fixture
def smtp_inbox(settings):
    """Send email to a real SMTP server on loopback; yield what it receives."""
    controller, inbox, port = smtp_server_start()
    settings.MAILERS = smtp_mailers(port)
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    yield inbox
    controller.stop()


@pytest.fixture
def test_dir(tmp_path, monkeypatch):
    """Where tests.durable_receivers writes its log."""
    monkeypatch.setenv("SIGNALPOST_TEST_DIR", str(tmp_path))
    return tmp_path
