"""Staff watch a send's progress bar move in the admin without reloading the page."""

import signal

import pytest

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import start_worker, stop
from tests.factories import make_newsletter, make_user

RECIPIENTS = 60
PASSWORD = "a-long-editor-password"


@pytest.mark.django_db(transaction=True)
def test_the_progress_bar_moves_without_a_reload(
    live_server, page, screenshot, smtp_inbox, settings, monkeypatch, tmp_path
):
    port = settings.MAILERS["default"]["OPTIONS"]["port"]
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SEND_RATE_PER_SECOND", "15")
    monkeypatch.setenv("SEND_BATCH_SIZE", "20")
    settings.SIGNALPOST_SEND_BATCH_SIZE = 20
    make_user(username="editor", password=PASSWORD, is_staff=True, is_superuser=True)
    letter = make_newsletter(slug="weekly", name="The Weekly")
    for number in range(RECIPIENTS):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="Big news", body_markdown="News.")
    issue_send(issue=issue)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/publishing/issue/{issue.pk}/change/")
    page.get_by_label("Username").fill("editor")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#send-progress").wait_for()
    page.evaluate("window.loadedOnce = true")
    assert page.locator("#progress-sent").inner_text() == "0"
    screenshot(page, "1-before")

    worker = start_worker("progress", tmp_path, "--lease=5")
    try:
        page.wait_for_function(
            "() => Number(document.getElementById('progress-sent').textContent) >= 10",
            timeout=30_000,
        )
        screenshot(page, "2-moving")
        assert page.evaluate("window.loadedOnce") is True, "no reload"
        assert 0 < float(page.locator("#progress-bar").get_attribute("value") or 0) < 100
        page.wait_for_function(
            "() => document.getElementById('progress-status').textContent === 'sent'",
            timeout=60_000,
        )
    finally:
        stop(worker, signal.SIGTERM)
    screenshot(page, "3-sent")
    assert page.evaluate("window.loadedOnce") is True
    assert page.locator("#progress-sent").inner_text() == str(RECIPIENTS)
    assert Issue.objects.get(pk=issue.pk).status == "sent"
