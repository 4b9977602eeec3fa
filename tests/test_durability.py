"""Which commits wait for the disk: a pending subscription's does not (PostgreSQL's
``synchronous_commit = off`` for that transaction alone), every other one does."""

import pytest
from django.db import connection, transaction

from signalpost.durability import commit_without_flush
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.services import subscribe, subscription_confirm, subscription_end
from signalpost.signals import subscription_requested, user_subscribed, user_unsubscribed
from tests.factories import make_newsletter

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
