"""A send finishes, each recipient getting one email, whatever fails along the way."""

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.durable.heartbeat import WorkerHeartbeat
from signalpost.newsletters.services import subscribe
from signalpost.publishing import receivers, tasks
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send, issue_send_resume
from signalpost.signals import delivery_failed
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

READERS = [f"reader{number}@example.com" for number in range(4)]


@pytest.fixture
def letter(db):
    letter = make_newsletter(slug="weekly", sender_email="news@wrong.example.com")
    for address in READERS:
        subscribe(email=address, newsletter=letter, source="admin")
    return letter


@pytest.fixture
def issue(letter):
    return issue_create(newsletter=letter, subject="Big news", body_markdown="News.")


def run_retries_now():
    """Run the worker, then each retry it scheduled at once, until no task waits."""
    run_worker_until_idle()
    while DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now()):
        run_worker_until_idle()


def received(inbox):
    return Counter(envelope.rcpt_tos[0] for envelope in inbox.envelopes)


def fail(*args, **kwargs):
    raise OperationalError("database is locked")


@pytest.fixture
def stranded_send(issue, monkeypatch):
    """A send whose only batch failed and could not give its deliveries back either."""
    monkeypatch.setattr(tasks, "deliveries_send", fail)
    monkeypatch.setattr(tasks, "deliveries_release", fail)
    # Without the workers' own recovery, so that the send stays stranded.
    monkeypatch.setattr(receivers, "sends_recover", lambda: 0)
    issue_send(issue=issue)
    run_worker_until_idle()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sending"}
    assert not DBTaskResult.objects.filter(status="READY").exists()
    monkeypatch.undo()
    return issue


def test_a_database_error_while_claiming_a_batch_only_delays_it(
    smtp_inbox, settings, issue, monkeypatch
):
    settings.SIGNALPOST_SEND_BATCH_SIZE = 2
    claim = tasks.deliveries_claim
    claims = []

    def claim_failing_once(**kwargs):
        claims.append(kwargs)
        if len(claims) == 1:
            raise OperationalError("database is locked")
        return claim(**kwargs)

    monkeypatch.setattr(tasks, "deliveries_claim", claim_failing_once)
    with SignalRecorder(delivery_failed) as failed:
        issue_send(issue=issue)
        run_retries_now()

    assert received(smtp_inbox) == Counter(READERS)
    assert failed.calls == []
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_a_database_error_while_finishing_a_send_only_delays_the_finish(
    smtp_inbox, issue, monkeypatch
):
    finish = tasks.issue_finish_if_done
    finishes = []

    def finish_failing_once(**kwargs):
        finishes.append(kwargs)
        if len(finishes) == 1:
            raise OperationalError("database is locked")
        return finish(**kwargs)

    monkeypatch.setattr(tasks, "issue_finish_if_done", finish_failing_once)
    issue_send(issue=issue)
    run_retries_now()

    assert received(smtp_inbox) == Counter(READERS)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_send_issue_resume_finishes_a_send_whose_batch_could_not_give_back(
    smtp_inbox, stranded_send
):
    out = StringIO()
    call_command("send_issue", "weekly", stranded_send.slug, "--resume", "--no-wait", stdout=out)
    run_worker_until_idle()

    assert "Resuming 'Big news': 1 batch task(s) queued." in out.getvalue()
    assert received(smtp_inbox) == Counter(READERS)
    stranded_send.refresh_from_db()
    assert stranded_send.status == Issue.Status.SENT
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_workers_finish_a_stranded_send_on_their_own(smtp_inbox, stranded_send):
    WorkerHeartbeat(worker_id="sweeper", queues=["default"], lease_seconds=30).beat()
    run_worker_until_idle()

    assert received(smtp_inbox) == Counter(READERS)
    stranded_send.refresh_from_db()
    assert stranded_send.status == Issue.Status.SENT


def test_resuming_a_send_that_is_going_well_sends_nothing_twice(smtp_inbox, issue):
    issue_send(issue=issue)
    assert issue_send_resume(issue=issue) == 0
    run_worker_until_idle()
    assert issue_send_resume(issue=issue) == 0

    assert received(smtp_inbox) == Counter(READERS)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_refused_sender_is_retried_later_without_failing_anyone(
    smtp_inbox, issue, caplog, pipelining
):
    smtp_inbox.pipelining = pipelining
    smtp_inbox.refuse_senders.add("news@wrong.example.com")
    with SignalRecorder(delivery_failed) as failed:
        issue_send(issue=issue)
        run_worker_until_idle()

    assert smtp_inbox.envelopes == []
    assert failed.calls == []
    deliveries = Delivery.objects.all()
    assert {(d.status, d.attempts) for d in deliveries} == {("queued", 0)}
    assert all("553" in d.last_error for d in deliveries)
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.run_after > timezone.now()
    assert "refused the sender of issue" in caplog.text


def test_a_send_held_for_a_refused_sender_goes_out_once_the_sender_is_fixed(
    smtp_inbox, settings, letter, issue, caplog
):
    settings.SIGNALPOST_SEND_MAX_ATTEMPTS = 2
    smtp_inbox.refuse_senders.add("news@wrong.example.com")
    with SignalRecorder(delivery_failed) as failed:
        issue_send(issue=issue)
        run_retries_now()

        assert set(Delivery.objects.values_list("status", flat=True)) == {"held"}
        issue.refresh_from_db()
        assert issue.status == Issue.Status.SENDING
        assert "send_issue weekly big-news --resume" in caplog.text

        letter.sender_email = "editors@weekly.example.com"
        letter.save()
        call_command("send_issue", "weekly", issue.slug, "--resume", "--no-wait", stdout=StringIO())
        run_worker_until_idle()

    assert received(smtp_inbox) == Counter(READERS)
    assert failed.calls == []
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_workers_leave_a_held_send_alone(smtp_inbox, settings, issue):
    settings.SIGNALPOST_SEND_MAX_ATTEMPTS = 1
    smtp_inbox.refuse_senders.add("news@wrong.example.com")
    issue_send(issue=issue)
    run_worker_until_idle()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"held"}

    WorkerHeartbeat(worker_id="sweeper", queues=["default"], lease_seconds=30).beat()

    assert not DBTaskResult.objects.filter(status="READY").exists()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"held"}
