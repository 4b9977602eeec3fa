"""Starting a send returns at once at any size; workers create its deliveries in chunks,
for exactly the subscribers active at the click, each once."""

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, subscription_confirm, subscription_end
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.selectors import issue_progress
from signalpost.publishing.services import (
    issue_cancel,
    issue_create,
    issue_pause,
    issue_prepare_chunk,
    issue_resume,
    issue_send,
    sends_recover,
)
from signalpost.signals import issue_sending_started
from tests.durable_helpers import run_worker_until_idle, start_worker, stop, wait_for
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def letter(db):
    return make_newsletter(slug="weekly", name="The Weekly")


def readers(letter, count, *, first=0):
    emails = [f"reader{number}@example.com" for number in range(first, first + count)]
    for email in emails:
        subscribe(email=email, newsletter=letter, source="admin")
    return emails


def draft(letter):
    return issue_create(newsletter=letter, subject="News", body_markdown="News.")


def issue_recipients(smtp_inbox, count):
    """The addresses the issue reached (once each or more), past the subscription emails."""
    smtp_inbox.wait_for(count)
    return Counter(m["To"] for m in smtp_inbox.messages if m["Subject"] == "News")


def prepare_tasks(issue):
    return DBTaskResult.objects.filter(
        task_path__endswith=".issue_prepare", args_kwargs__kwargs__issue_id=issue.pk
    )


def prepare_next(issue):
    """Run the send's next preparing chunk, as the worker that takes its task does."""
    cursor = Issue.objects.values_list("prepared_through_id", flat=True).get(pk=issue.pk)
    return issue_prepare_chunk(issue_id=issue.pk, after_id=cursor)


def test_starting_a_send_does_the_same_few_queries_at_any_list_size(letter):
    small, large = (
        draft(letter),
        issue_create(newsletter=letter, subject="Later", body_markdown="x"),
    )
    readers(letter, 2)
    with CaptureQueriesContext(connection) as for_two:
        assert issue_send(issue=small) is True
    readers(letter, 60, first=2)
    with CaptureQueriesContext(connection) as for_sixty_two:
        assert issue_send(issue=large) is True

    assert len(for_two) == len(for_sixty_two)
    statements = " ".join(query["sql"] for query in for_sixty_two).lower()
    assert Delivery._meta.db_table not in statements, "no delivery is created in the request"
    assert not Delivery.objects.exists()
    assert prepare_tasks(large).count() == 1
    large.refresh_from_db()
    assert large.status == "sending" and large.preparing


def test_every_subscriber_active_at_the_click_gets_the_issue_once_across_chunks(
    smtp_inbox, letter, settings
):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 3
    settings.SIGNALPOST_SEND_BATCH_SIZE = 2
    audience = readers(letter, 10)
    issue = draft(letter)
    with SignalRecorder(issue_sending_started) as started:
        issue_send(issue=issue)
        run_worker_until_idle()

    received = issue_recipients(smtp_inbox, 10)
    assert sorted(received) == sorted(audience)
    assert set(received.values()) == {1}
    issue.refresh_from_db()
    assert (issue.status, issue.recipient_count) == ("sent", 10)
    assert [call["recipient_count"] for call in started.calls] == [10]
    assert prepare_tasks(issue).count() == 4, "10 subscriptions in chunks of 3"


def test_someone_who_joins_after_the_click_does_not_get_the_issue(
    smtp_inbox, letter, double_opt_in_newsletter
):
    audience = readers(letter, 2)
    pending = subscribe(email="slow@example.com", newsletter=letter, source="form")
    pending.status = Subscription.Status.PENDING
    pending.save()
    issue = draft(letter)
    issue_send(issue=issue)

    readers(letter, 1, first=100)  # a new subscription, after the click
    subscription_confirm(subscription=pending)  # an old row, active after the click
    run_worker_until_idle()

    assert sorted(issue_recipients(smtp_inbox, 4).elements()) == sorted(audience)
    issue.refresh_from_db()
    assert (issue.status, issue.recipient_count) == ("sent", 2)
    assert not Delivery.objects.filter(email__in=["reader100@example.com", "slow@example.com"])


def test_someone_who_leaves_after_the_click_does_not_get_the_issue(smtp_inbox, letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    readers(letter, 4)
    issue = draft(letter)
    issue_send(issue=issue)
    assert prepare_next(issue) is True  # reader0 and reader1 have their deliveries
    for email in ("reader0@example.com", "reader3@example.com"):  # prepared, not yet
        subscription_end(
            profile=Subscription.objects.get(profile__email=email).profile,
            newsletter=letter,
            reason="bye",
        )
    DBTaskResult.objects.filter(task_path__endswith=".issue_prepare").delete()
    while prepare_next(issue):
        pass
    run_worker_until_idle()

    received = sorted(issue_recipients(smtp_inbox, 2).elements())
    assert received == ["reader1@example.com", "reader2@example.com"]
    assert Delivery.objects.get(email="reader0@example.com").status == "skipped"
    assert not Delivery.objects.filter(email="reader3@example.com").exists()
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_progress_says_preparing_with_a_count_until_the_total_is_known(letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    readers(letter, 5)
    issue = draft(letter)
    issue_send(issue=issue)
    issue.refresh_from_db()
    assert issue_progress(issue=issue)["preparing"] is True
    assert issue_progress(issue=issue)["total"] == 0

    prepare_next(issue)
    issue.refresh_from_db()
    progress = issue_progress(issue=issue)
    assert (progress["preparing"], progress["total"], progress["percent"]) == (True, 2, 0.0)

    while prepare_next(issue):
        pass
    issue.refresh_from_db()
    progress = issue_progress(issue=issue)
    assert (progress["preparing"], progress["total"], progress["remaining"]) == (False, 5, 5)
    assert issue.recipient_count == 5


def test_a_chunk_run_again_after_its_worker_died_creates_nothing_twice(letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    readers(letter, 3)
    issue = draft(letter)
    issue_send(issue=issue)

    assert issue_prepare_chunk(issue_id=issue.pk, after_id=0) is True
    assert issue_prepare_chunk(issue_id=issue.pk, after_id=0) is False, "its cursor moved on"
    while prepare_next(issue):
        pass

    emails = Counter(Delivery.objects.values_list("email", flat=True))
    assert len(emails) == 3 and set(emails.values()) == {1}
    batches = DBTaskResult.objects.filter(task_path__endswith=".issue_send_batch").count()
    assert batches == 2, "one batch task per chunk of deliveries, none for the repeat"


def test_a_paused_send_stops_preparing_and_goes_on_when_resumed(letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    readers(letter, 3)
    issue = draft(letter)
    issue_send(issue=issue)
    issue_pause(issue=issue)

    assert prepare_next(issue) is False
    prepare_tasks(issue).delete()
    assert sends_recover() == 0, "a paused send is left alone"
    assert not Delivery.objects.exists()

    issue_resume(issue=issue)
    [task] = prepare_tasks(issue)
    assert task.args_kwargs["kwargs"] == {"issue_id": issue.pk, "after_id": 0}


def test_a_send_cancelled_while_preparing_creates_no_more_deliveries(letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    readers(letter, 5)
    issue = draft(letter)
    issue_send(issue=issue)
    assert prepare_next(issue) is True, "the first chunk of two is prepared"

    assert issue_cancel(issue=issue) == 2
    assert prepare_next(issue) is False
    assert sends_recover() == 0
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    assert statuses == {"cancelled": 2}
    issue.refresh_from_db()
    assert issue.status == "cancelled"


def test_a_send_whose_preparing_task_was_lost_still_finishes(smtp_inbox, letter, settings):
    settings.SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = 2
    audience = readers(letter, 3)
    issue = draft(letter)
    issue_send(issue=issue)
    prepare_next(issue)
    prepare_tasks(issue).delete()  # dead-lettered, say

    assert sends_recover() >= 1
    run_worker_until_idle()

    assert sorted(issue_recipients(smtp_inbox, 3).elements()) == audience
    issue.refresh_from_db()
    assert (issue.status, issue.recipient_count) == ("sent", 3)


def test_an_empty_list_finishes_the_send_once_prepared(letter):
    issue = draft(letter)
    issue_send(issue=issue)
    assert prepare_next(issue) is False
    issue.refresh_from_db()
    assert (issue.status, issue.recipient_count) == ("sent", 0)


def test_two_real_workers_prepare_and_send_a_list_each_subscriber_once(
    tmp_path, smtp_inbox, letter, settings, monkeypatch
):
    port = settings.MAILERS["default"]["OPTIONS"]["port"]
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SEND_PREPARE_CHUNK_SIZE", "40")
    monkeypatch.setenv("SEND_BATCH_SIZE", "25")
    audience = readers(letter, 150)
    issue = draft(letter)
    workers = [start_worker(name, tmp_path) for name in ("one", "two")]
    try:
        issue_send(issue=issue)
        subscribe(email="late@example.com", newsletter=letter, source="admin")
        wait_for(
            lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=120,
            what="the send to finish",
        )
    finally:
        for worker in workers:
            assert stop(worker) == 0

    received = issue_recipients(smtp_inbox, 150)
    assert sorted(received) == sorted(audience)
    assert set(received.values()) == {1}
