"""Deliveries are found by their claim, never by an index on ``status``: the sent mark
stays a HOT update on PostgreSQL, and a send still finishes, recovers and cancels."""

import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.selectors import claimers_stranded, delivery_claimers
from signalpost.publishing.services import (
    deliveries_claim,
    issue_cancel,
    issue_create,
    issue_finish_if_done,
)
from signalpost.publishing.tasks import issue_send_batch
from signalpost.publishing.writes import delivery_sent
from tests.factories import make_newsletter
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

# What the sent mark writes (``writes.delivery_sent``).
MARKED = {"status", "message_id", "sent_at"}


@pytest.fixture
def issue(db):
    letter = make_newsletter(slug="weekly")
    for number in range(6):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="News", body_markdown="Hello.")
    assert issue_send_prepared(issue=issue) is True
    return issue


def batch_task(*, issue, status):
    """A batch task row of ``issue`` in ``status``; its id is a claimer."""
    return DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {"issue_id": issue.pk}},
        task_path=issue_send_batch.module_path,
        queue_name="default",
        backend_name="default",
        run_after=timezone.now(),
        exception_class_path="",
        traceback="",
    )


def claim(issue, task, count):
    claimer = str(task.pk)
    return claimer, deliveries_claim(issue_id=issue.pk, claimer=claimer, limit=count)


def test_no_index_of_deliveries_holds_a_column_the_sent_mark_changes():
    indexed = {field for index in Delivery._meta.indexes for field in index.fields}
    indexed |= {field for constraint in Delivery._meta.constraints for field in constraint.fields}
    assert not indexed & MARKED
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'publishing_delivery'"
            )
            definitions = [row[0] for row in cursor.fetchall()]
        assert len(definitions) == 4
        assert not [d for d in definitions if any(column in d for column in MARKED)]


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="HOT is PostgreSQL's")
def test_the_sent_mark_is_a_hot_update(issue):
    task = batch_task(issue=issue, status="RUNNING")
    _, ids = claim(issue, task, 1)
    delivery = Delivery.objects.get(pk=ids[0])
    with transaction.atomic():
        # This backend's counts not yet reported (the claim's among them): by difference.
        before = updates_so_far()
        delivery_sent(delivery=delivery, message_id="<one@example.com>")
        updated, hot = (after - was for after, was in zip(updates_so_far(), before, strict=True))
    assert (updated, hot) == (1, 1)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT


def updates_so_far():
    """This backend's updates of deliveries, and how many were HOT, not reported yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
            "pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
            ["publishing_delivery", "publishing_delivery"],
        )
        return cursor.fetchone()


def test_the_claim_takes_each_queued_delivery_once(issue):
    first, second = (batch_task(issue=issue, status="RUNNING") for _ in range(2))
    _, taken_first = claim(issue, first, 4)
    _, taken_second = claim(issue, second, 4)
    everyone = sorted(issue.deliveries.values_list("id", flat=True))
    assert len(taken_first) == 4
    assert sorted(taken_first + taken_second) == everyone
    # A claimer that runs again gets its own unfinished deliveries back first.
    assert claim(issue, first, 4)[1] == taken_first


def test_delivery_claimers_lists_each_claimer_once(issue):
    tasks = [batch_task(issue=issue, status="RUNNING") for _ in range(3)]
    for task in tasks:
        claim(issue, task, 2)
    assert delivery_claimers(issue_id=issue.pk) == {str(task.pk) for task in tasks}


@pytest.mark.parametrize(
    ("status", "stranded"),
    [("READY", False), ("RUNNING", False), ("SUCCESSFUL", False), ("FAILED", True)],
)
def test_a_claim_is_stranded_once_its_batch_ended_without_success(issue, status, stranded):
    task = batch_task(issue=issue, status="RUNNING")
    claimer, _ = claim(issue, task, 3)
    DBTaskResult.objects.filter(pk=task.pk).update(status=status)
    assert claimers_stranded(issue_id=issue.pk) == ({claimer} if stranded else set())


def test_a_claim_whose_task_is_gone_is_stranded_and_sent_deliveries_never_are(issue):
    claimer = str(uuid.uuid4())
    ids = deliveries_claim(issue_id=issue.pk, claimer=claimer, limit=2)
    assert claimers_stranded(issue_id=issue.pk) == {claimer}
    for delivery in Delivery.objects.filter(pk__in=ids):
        delivery_sent(delivery=delivery, message_id=f"<{delivery.pk}@example.com>")
    assert claimers_stranded(issue_id=issue.pk) == set()


def test_the_send_finishes_only_once_no_delivery_is_queued_or_in_flight(issue):
    task = batch_task(issue=issue, status="RUNNING")
    _, first = claim(issue, task, 3)
    assert issue_finish_if_done(issue_id=issue.pk) is False, "three are queued"
    DBTaskResult.objects.filter(pk=task.pk).update(status="SUCCESSFUL")
    other = batch_task(issue=issue, status="RUNNING")
    _, rest = claim(issue, other, 10)
    assert len(rest) == 3
    for delivery in Delivery.objects.filter(pk__in=first):
        delivery_sent(delivery=delivery, message_id=f"<{delivery.pk}@example.com>")
    assert issue_finish_if_done(issue_id=issue.pk) is False, "three are in flight"
    for delivery in Delivery.objects.filter(pk__in=rest):
        delivery_sent(delivery=delivery, message_id=f"<{delivery.pk}@example.com>")
    assert issue_finish_if_done(issue_id=issue.pk) is True
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT


def test_cancel_cancels_the_queue_and_dead_batches_claims_not_live_ones(issue):
    live, dead = (batch_task(issue=issue, status="RUNNING") for _ in range(2))
    _, in_flight = claim(issue, live, 2)
    _, stranded = claim(issue, dead, 2)
    DBTaskResult.objects.filter(pk=dead.pk).update(status="FAILED")
    assert issue_cancel(issue=Issue.objects.get(pk=issue.pk)) == 4
    statuses = dict(issue.deliveries.values_list("id", "status"))
    assert {statuses[pk] for pk in in_flight} == {Delivery.Status.SENDING}
    assert {statuses[pk] for pk in stranded} == {Delivery.Status.CANCELLED}
    assert list(statuses.values()).count(Delivery.Status.CANCELLED) == 4
