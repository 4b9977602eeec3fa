"""A send survives its workers being killed: nothing lost, nothing doubled but the message
in flight."""

import signal
from collections import Counter

import pytest

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import start_worker, stop, wait_for, workers_send_to_inbox
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = 200


def test_a_send_killed_mid_way_finishes_after_a_restart(
    tmp_path, smtp_inbox, settings, monkeypatch
):
    workers_send_to_inbox(settings, monkeypatch, batch_size=50, rate_per_second=60)
    letter = make_newsletter(slug="weekly")
    for number in range(RECIPIENTS):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="Big news", body_markdown="News.")
    issue_send(issue=issue)

    first = start_worker("first", tmp_path, "--lease=2")
    try:
        wait_for(lambda: len(smtp_inbox.envelopes) >= 40, timeout=60, what="40 messages")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first, signal.SIGKILL)
    sent_before_restart = len(smtp_inbox.envelopes)
    assert sent_before_restart < RECIPIENTS, "killed mid-send"

    second = start_worker("second", tmp_path, "--lease=2")
    try:
        wait_for(
            lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=120,
            what="the send to finish",
        )
    finally:
        assert stop(second) == 0

    received = Counter(envelope.rcpt_tos[0] for envelope in smtp_inbox.envelopes)
    assert len(received) == RECIPIENTS, "nobody lost"
    doubled = [address for address, count in received.items() if count > 1]
    assert len(doubled) <= 1, f"only the message in flight may be doubled: {doubled}"
    assert Delivery.objects.filter(issue=issue, status="sent").count() == RECIPIENTS
