"""Which commits wait for the disk: a pending subscription's does not (PostgreSQL's
``synchronous_commit = off`` for that transaction alone), every other one does."""

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from signalpost.durability import commit_without_flush
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.services import (
    ConsentEvidence,
    subscribe,
    subscription_confirm,
    subscription_end,
)
from signalpost.newsletters.tasks import subscribe_queue
from signalpost.signals import subscription_requested, user_subscribed, user_unsubscribed
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.row_helpers import assert_recent, row

pytestmark = pytest.mark.django_db(transaction=True)

needs_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="needs PostgreSQL"
)


def synchronous_commit():
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.fixture
def seen_inside():
    """What ``synchronous_commit`` was inside each subscription transaction, by signal."""
    seen = []

    def record(signal_name):
        def receiver(**kwargs):
            seen.append((signal_name, synchronous_commit()))

        return receiver

    receivers = {
        subscription_requested: record("subscription_requested"),
        user_subscribed: record("user_subscribed"),
        user_unsubscribed: record("user_unsubscribed"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, dispatch_uid=f"test-durability-{id(receiver)}")
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver, dispatch_uid=f"test-durability-{id(receiver)}")


@needs_postgresql
def test_a_pending_subscription_commits_without_waiting_for_the_disk(seen_inside):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    subscription = subscribe(
        email="reader@example.com", newsletter=newsletter, source=Subscription.Source.FORM
    )

    assert seen_inside == [("subscription_requested", "off")]
    # SET LOCAL ends with the transaction: the connection's next one waits again.
    assert synchronous_commit() == "on"
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PENDING


@needs_postgresql
def test_confirming_activating_and_leaving_wait_for_the_disk(seen_inside):
    double = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)
    single = make_newsletter(opt_in=Newsletter.OptIn.SINGLE)
    pending = subscribe(
        email="reader@example.com", newsletter=double, source=Subscription.Source.FORM
    )
    seen_inside.clear()

    subscription_confirm(subscription=pending)
    active = subscribe(
        email="other@example.com", newsletter=single, source=Subscription.Source.FORM
    )
    subscription_end(profile=active.profile, newsletter=single, reason="test")

    assert seen_inside == [
        ("user_subscribed", "on"),
        ("user_subscribed", "on"),
        ("user_unsubscribed", "on"),
    ]


@needs_postgresql
def test_the_setting_keeps_every_commit_waiting(seen_inside, settings):
    settings.SIGNALPOST_SUBSCRIBE_ASYNC_COMMIT = False
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    subscribe(email="reader@example.com", newsletter=newsletter, source=Subscription.Source.API)

    assert seen_inside == [("subscription_requested", "on")]


@needs_postgresql
def test_a_rolled_back_pending_subscription_leaves_nothing(seen_inside):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    def fail(**kwargs):
        raise RuntimeError("a receiver failed after the subscription was written")

    subscription_requested.connect(fail, dispatch_uid="test-durability-fail")
    try:
        with pytest.raises(RuntimeError):
            subscribe(email="reader@example.com", newsletter=newsletter, source="form")
    finally:
        subscription_requested.disconnect(fail, dispatch_uid="test-durability-fail")

    assert seen_inside == [("subscription_requested", "off")]
    assert not Subscription.objects.exists()
    assert synchronous_commit() == "on"


@needs_postgresql
def test_inside_an_enclosing_transaction_every_commit_waits(seen_inside):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    with transaction.atomic():
        # Whatever else this transaction writes must not lose its durability.
        subscribe(email="reader@example.com", newsletter=newsletter, source="form")

    assert seen_inside == [("subscription_requested", "on")]
    assert Subscription.objects.get().status == Subscription.Status.PENDING


def test_outside_a_transaction_it_changes_nothing():
    # Autocommit: a SET LOCAL here would only warn and last for no statement.
    commit_without_flush()
    assert synchronous_commit() in ("on", None)


def test_on_any_database_subscribing_still_works(seen_inside):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    subscribe(email="reader@example.com", newsletter=newsletter, source="form")

    assert [name for name, _ in seen_inside] == ["subscription_requested"]
    assert Subscription.objects.get().status == Subscription.Status.PENDING


# A sign-up queued from a public form: one statement that is its own transaction ------------

CONSENT = ConsentEvidence(
    at=datetime(2026, 12, 3, 7, 0, tzinfo=UTC), ip="203.0.113.7", user_agent="Browser/1.0"
)


def queue_sign_up(newsletter, email):
    subscribe_queue(email=email, newsletter=newsletter, name="Reader", consent=CONSENT)
    return DBTaskResult.objects.get(args_kwargs__kwargs__email=email)


def wal_syncs():
    """The WAL flushes PostgreSQL has counted, this connection's own included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # the next statement: the counts went out when idle
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT wal_sync FROM pg_stat_wal")
        return cursor.fetchone()[0]


@needs_postgresql
def test_a_queued_sign_up_is_one_statement_and_leaves_the_connection_as_it_was(settings):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    with CaptureQueriesContext(connection) as queries:
        subscribe_queue(email="ann@example.com", newsletter=newsletter, name="Ann", consent=CONSENT)

    # No BEGIN, SET LOCAL or COMMIT of its own: the INSERT is its transaction.
    [statement] = [query["sql"] for query in queries.captured_queries]
    # (Logged as "QUERY = '...' - PARAMS = (...)": the statement is bound on the server.)
    assert "set_config(" in statement and "synchronous_commit" in statement
    assert 'INSERT INTO "django_tasks_database_dbtaskresult"' in statement
    assert synchronous_commit() == "on"
    assert not connection.in_atomic_block


@needs_postgresql
def test_a_queued_sign_up_writes_the_row_the_waiting_commit_writes(settings):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)
    fast = queue_sign_up(newsletter, "ann@example.com")
    settings.SIGNALPOST_SUBSCRIBE_ASYNC_COMMIT = False
    waited = queue_sign_up(newsletter, "bob@example.com")

    def comparable(task_row):
        values = row(DBTaskResult, task_row.pk, leave_out=("id", "enqueued_at"))
        del values["args_kwargs"]["kwargs"]["email"]
        return values

    assert comparable(fast) == comparable(waited)
    assert fast.status == TaskResultStatus.READY
    assert fast.args_kwargs["kwargs"]["email"] == "ann@example.com"
    assert_recent(fast.enqueued_at)


@needs_postgresql
def test_queued_sign_ups_do_not_wait_for_the_disk_and_other_writes_do(settings):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)
    settings.SIGNALPOST_SUBSCRIBE_ASYNC_COMMIT = False
    before = wal_syncs()
    for number in range(40):
        queue_sign_up(newsletter, f"waited{number}@example.com")
    waited = wal_syncs() - before
    if waited < 40:
        pytest.skip(f"this server does not flush its WAL at each commit (fsync off?): {waited}")
    settings.SIGNALPOST_SUBSCRIBE_ASYNC_COMMIT = True
    before = wal_syncs()
    for number in range(40):
        queue_sign_up(newsletter, f"fast{number}@example.com")
    fast = wal_syncs() - before

    # The WAL writer flushes a few times meanwhile; no commit waited for its own flush.
    assert fast < waited / 4, (fast, waited)
    assert DBTaskResult.objects.filter(args_kwargs__kwargs__email__startswith="fast").count() == 40


@needs_postgresql
def test_a_sign_up_queued_inside_a_transaction_is_a_plain_insert_that_rolls_back():
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        subscribe_queue(email="ann@example.com", newsletter=newsletter, name="Ann", consent=CONSENT)
        raise RuntimeError("the enclosing transaction fails after the queueing")

    assert not DBTaskResult.objects.filter(args_kwargs__kwargs__email="ann@example.com").exists()
    assert not any("set_config" in query["sql"] for query in queries.captured_queries)
    assert synchronous_commit() == "on"


def test_a_queued_sign_up_runs_on_any_database(smtp_inbox):
    newsletter = make_newsletter(opt_in=Newsletter.OptIn.DOUBLE)

    queue_sign_up(newsletter, "ann@example.com")
    run_worker_until_idle()

    assert Subscription.objects.get(profile__email="ann@example.com").status == "pending"
    [message] = smtp_inbox.messages
    assert message["To"] == "ann@example.com"
