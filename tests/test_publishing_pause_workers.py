"""Pause, resume and cancel with real worker processes and a real SMTP server: a pause
stops every worker within a second, and nobody gets a message twice through pause,
resume and a killed worker."""

import signal
import time
from collections import Counter

import pytest

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import (
    issue_cancel,
    issue_create,
    issue_pause,
    issue_resume,
    issue_send,
)
from tests.durable_helpers import start_worker, stop, wait_for, workers_send_to_inbox
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = 300


@pytest.fixture
def big_send(smtp_inbox, settings, monkeypatch):
    workers_send_to_inbox(settings, monkeypatch, batch_size=150, rate_per_second=40)
    letter = make_newsletter(slug="weekly")
    for number in range(RECIPIENTS):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="Big news", body_markdown="News.")
    issue_send(issue=issue)
    return issue


def received(inbox):
    return Counter(envelope.rcpt_tos[0] for envelope in inbox.envelopes)


def test_pause_stops_every_worker_within_a_second_and_resume_sends_each_once(
    tmp_path, smtp_inbox, big_send
):
    workers = [start_worker(name, tmp_path, "--lease=2") for name in ("one", "two")]
    try:
        wait_for(lambda: len(smtp_inbox.envelopes) >= 40, timeout=60, what="40 messages")
        issue_pause(issue=big_send)
        time.sleep(1.0)
        after_a_second = len(smtp_inbox.envelopes)
        time.sleep(2.0)
        assert len(smtp_inbox.envelopes) == after_a_second, "nothing leaves a second after"
        assert after_a_second < RECIPIENTS, "paused mid-send"
        wait_for(
            lambda: not Delivery.objects.filter(issue=big_send, status="sending").exists(),
            timeout=10,
            what="the batches to give back their claims",
        )
        assert Delivery.objects.filter(issue=big_send, status="sent").count() == after_a_second

        issue_resume(issue=big_send)
        # A worker killed mid-way through the resumed send; the other and a new one finish.
        wait_for(
            lambda: len(smtp_inbox.envelopes) >= after_a_second + 40,
            timeout=60,
            what="40 more messages",
        )
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        workers.append(start_worker("three", tmp_path, "--lease=2"))
        wait_for(
            lambda: Issue.objects.get(pk=big_send.pk).status == Issue.Status.SENT,
            timeout=120,
            what="the send to finish",
        )
    finally:
        for worker in workers:
            stop(worker, signal.SIGKILL)

    counts = received(smtp_inbox)
    assert len(counts) == RECIPIENTS, "nobody lost"
    doubled = [address for address, count in counts.items() if count > 1]
    assert len(doubled) <= 1, f"only the message in flight at the kill may be doubled: {doubled}"
    assert Delivery.objects.filter(issue=big_send, status="sent").count() == RECIPIENTS


def test_cancel_stops_every_worker_and_sends_nothing_more(tmp_path, smtp_inbox, big_send):
    workers = [start_worker(name, tmp_path, "--lease=2") for name in ("one", "two")]
    try:
        wait_for(lambda: len(smtp_inbox.envelopes) >= 40, timeout=60, what="40 messages")
        issue_cancel(issue=big_send)
        wait_for(
            lambda: (
                not Delivery.objects.filter(
                    issue=big_send, status__in=["sending", "queued"]
                ).exists()
            ),
            timeout=10,
            what="every unsent delivery to be cancelled",
        )
        time.sleep(1.0)
        sent = len(smtp_inbox.envelopes)
    finally:
        for worker in workers:
            assert stop(worker) == 0
    statuses = Counter(Delivery.objects.filter(issue=big_send).values_list("status", flat=True))
    assert statuses == {"sent": sent, "cancelled": RECIPIENTS - sent}
    assert max(received(smtp_inbox).values()) == 1
    assert Issue.objects.get(pk=big_send.pk).status == Issue.Status.CANCELLED
