"""A send survives its workers being killed: nothing lost, nothing doubled but the message
in flight."""

import pytest

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import kill_mid_way_and_restart, workers_send_to_inbox
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

    kill_mid_way_and_restart(
        tmp_path,
        smtp_inbox,
        recipients=RECIPIENTS,
        done=lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
        what="the send to finish",
    )
    assert Delivery.objects.filter(issue=issue, status="sent").count() == RECIPIENTS
