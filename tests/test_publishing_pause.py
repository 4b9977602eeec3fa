"""Pausing, resuming and cancelling a running send: from the services, the API and
``send_issue``; nobody gets a message twice, cancelled messages are never sent."""

import json
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.api.tokens import api_token_create
from signalpost.newsletters.services import subscribe
from signalpost.publishing import tasks
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.selectors import issue_progress, issue_send_halted
from signalpost.publishing.services import (
    SendStateRefused,
    issue_cancel,
    issue_create,
    issue_pause,
    issue_resume,
)
from signalpost.publishing.writes import SentMarks
from signalpost.signals import issue_cancelled, issue_paused, issue_resumed
from signalpost.webhooks.events import EVENTS
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

READERS = [f"reader{number}@example.com" for number in range(6)]


@pytest.fixture
def letter(db):
    letter = make_newsletter(slug="weekly")
    for address in READERS:
        subscribe(email=address, newsletter=letter, source="admin")
    return letter


@pytest.fixture
def issue(letter):
    return issue_create(newsletter=letter, subject="Big news", body_markdown="News.")


@pytest.fixture
def halting_after(monkeypatch):
    """``halting_after(n, action)``: run ``action`` on the issue right after the n-th
    message is recorded, from inside the batch, as another worker or person would."""

    def arm(count, action):
        original = SentMarks.mark
        marked = []

        def mark_then_act(self, delivery, *, message_id):
            original(self, delivery, message_id=message_id)
            marked.append(delivery.pk)
            if len(marked) == count:
                self.settle()
                action(issue=Issue.objects.get(pk=delivery.issue_id))

        monkeypatch.setattr(SentMarks, "mark", mark_then_act)

    monkeypatch.setattr(tasks, "HALT_RECHECK_SECONDS", 0)
    return arm


def received(inbox):
    return Counter(envelope.rcpt_tos[0] for envelope in inbox.envelopes)


def statuses(issue):
    return Counter(Delivery.objects.filter(issue=issue).values_list("status", flat=True))


def test_a_paused_send_stops_and_resume_sends_the_rest_exactly_once(
    smtp_inbox, issue, halting_after
):
    halting_after(2, issue_pause)
    issue_send_prepared(issue=issue)
    run_worker_until_idle()

    assert len(smtp_inbox.envelopes) == 2, "nothing leaves after the pause"
    issue.refresh_from_db()
    assert issue.status == Issue.Status.PAUSED
    assert statuses(issue) == {"sent": 2, "queued": 4}
    assert Delivery.objects.filter(status="queued", attempts__gt=0).count() == 0

    issue_resume(issue=issue)
    run_worker_until_idle()

    assert received(smtp_inbox) == dict.fromkeys(READERS, 1)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_a_batch_waiting_when_the_send_is_paused_sends_nothing(smtp_inbox, issue):
    issue_send_prepared(issue=issue)
    issue_pause(issue=issue)
    run_worker_until_idle()
    assert smtp_inbox.envelopes == []
    assert statuses(issue) == {"queued": 6}
    assert issue_send_halted(issue_id=issue.pk)


def test_a_cancelled_send_counts_what_it_never_sent_as_cancelled_not_failed(
    smtp_inbox, issue, halting_after
):
    halting_after(3, issue_cancel)
    issue_send_prepared(issue=issue)
    run_worker_until_idle()

    assert len(smtp_inbox.envelopes) == 3
    issue.refresh_from_db()
    assert issue.status == Issue.Status.CANCELLED
    assert statuses(issue) == {"sent": 3, "cancelled": 3}
    progress = issue_progress(issue=issue)
    assert (progress["sent"], progress["failed"], progress["cancelled"]) == (3, 0, 3)
    assert progress["percent"] == 100.0


def test_cancelling_a_paused_send_cancels_every_unsent_delivery(smtp_inbox, issue):
    issue_send_prepared(issue=issue)
    issue_pause(issue=issue)
    with SignalRecorder(issue_cancelled) as recorder:
        assert issue_cancel(issue=issue) == 6
        assert issue_cancel(issue=issue) == 0, "cancelling twice cancels once"
    run_worker_until_idle()
    assert smtp_inbox.envelopes == []
    assert statuses(issue) == {"cancelled": 6}
    assert [call["cancelled_count"] for call in recorder.calls] == [6]
    with pytest.raises(SendStateRefused):
        issue_resume(issue=issue)


def test_pause_resume_and_cancel_send_their_signals_once_each(issue):
    issue_send_prepared(issue=issue)
    with (
        SignalRecorder(issue_paused) as paused,
        SignalRecorder(issue_resumed) as resumed,
        SignalRecorder(issue_cancelled) as cancelled,
    ):
        assert issue_pause(issue=issue) is True
        assert issue_pause(issue=issue) is False
        issue_resume(issue=issue)
        issue_resume(issue=issue)  # running: only restarts what is stranded
        issue_cancel(issue=issue)
    assert [(c["sent_count"], c["remaining_count"]) for c in paused.calls] == [(0, 6)]
    assert [c["remaining_count"] for c in resumed.calls] == [6]
    assert [c["cancelled_count"] for c in cancelled.calls] == [6]
    assert paused.calls[0]["issue"].pk == issue.pk


def test_each_signal_has_a_webhook_event():
    events = {signal: name for name, (signal, _build) in EVENTS.items()}
    assert events[issue_paused] == "issue.paused"
    assert events[issue_resumed] == "issue.resumed"
    assert events[issue_cancelled] == "issue.cancelled"


@pytest.mark.parametrize("status", ["draft", "scheduled", "sent"])
def test_only_a_running_send_can_be_paused_resumed_or_cancelled(issue, status):
    Issue.objects.filter(pk=issue.pk).update(status=status)
    for action in (issue_pause, issue_resume, issue_cancel):
        with pytest.raises(SendStateRefused) as refused:
            action(issue=issue)
        assert status in refused.value.message_dict["status"][0]
    assert Issue.objects.get(pk=issue.pk).status == status


# The API


@pytest.fixture
def api(client, db):
    token = api_token_create(name="tests")[1]

    def call(path, body=None, **extra):
        return client.post(
            f"/api/v1{path}",
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **extra,
        )

    return call


def test_the_api_pauses_resumes_and_cancels_a_send(api, issue, smtp_inbox):
    issue_send_prepared(issue=issue)
    paused = api(f"/issues/{issue.pk}/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert paused.json()["progress"]["remaining"] == 6
    assert api(f"/issues/{issue.pk}/pause").status_code == 200, "pausing twice is harmless"

    resumed = api(f"/issues/{issue.pk}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "sending"

    cancelled = api(f"/issues/{issue.pk}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["progress"]["cancelled"] == 6
    assert body["progress"]["failed"] == 0
    run_worker_until_idle()
    assert smtp_inbox.envelopes == []


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_the_api_refuses_a_send_in_the_wrong_state_with_409_naming_the_status(api, issue, action):
    response = api(f"/issues/{issue.pk}/{action}")
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["field"] == "status"
    assert "draft" in error["message"]


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
@pytest.mark.parametrize(
    ("issue_id", "status"),
    [("999999", 404), ("0", 400), ("-1", 400), ("abc", 400), ("1e3", 400), ("9" * 30, 400)],
)
def test_the_api_answers_unknown_or_malformed_ids_without_a_500(
    api, issue, action, issue_id, status
):
    response = api(f"/issues/{issue_id}/{action}")
    assert response.status_code == status
    assert response.json()["errors"]


def test_the_api_ignores_a_body_and_refuses_without_a_token(client, api, issue):
    issue_send_prepared(issue=issue)
    assert client.post(f"/api/v1/issues/{issue.pk}/pause").status_code == 401
    assert Issue.objects.get(pk=issue.pk).status == "sending"
    hostile = api(f"/issues/{issue.pk}/pause", body={"status": "sent", "x": "<script>"})
    assert hostile.status_code in {200, 400}
    assert Issue.objects.get(pk=issue.pk).status in {"sending", "paused"}


# send_issue


def send_issue(*arguments):
    out = StringIO()
    call_command("send_issue", "weekly", "big-news", *arguments, "--no-wait", stdout=out)
    return out.getvalue()


def test_send_issue_pauses_resumes_and_cancels(smtp_inbox, issue):
    issue_send_prepared(issue=issue)
    assert "Paused 'Big news': 0 sent, 6 to send" in send_issue("--pause")
    assert "paused already" in send_issue("--pause")
    assert "Resumed 'Big news'" in send_issue("--resume")
    assert Issue.objects.get(pk=issue.pk).status == "sending"
    assert "6 cancelled now" in send_issue("--cancel")
    run_worker_until_idle()
    assert smtp_inbox.envelopes == []
    assert statuses(issue) == {"cancelled": 6}


@pytest.mark.parametrize("flag", ["--pause", "--resume", "--cancel"])
def test_send_issue_refuses_to_control_a_draft(issue, flag):
    with pytest.raises(CommandError, match="draft"):
        send_issue(flag)


def test_send_issue_takes_one_control_flag_at_a_time(issue):
    with pytest.raises(CommandError, match="not allowed with"):
        send_issue("--pause", "--cancel")
