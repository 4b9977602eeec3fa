"""Concurrent identical requests make one subscription (PostgreSQL only)."""

import threading

import pytest
from django.db import connection, connections

from signalpost.activity.models import Activity
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe

THREADS = 20


def subscribe_from_many_threads(newsletter):
    """Subscribe one address from THREADS threads released at once; return their errors."""
    start = threading.Barrier(THREADS)
    errors = []

    def subscribe_at_once():
        try:
            start.wait()
            subscribe(email="jane@example.com", newsletter=newsletter, source="form")
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=subscribe_at_once) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def skip_unless_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://...")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_subscribing_one_address_make_one_subscription(newsletter):
    skip_unless_postgresql()
    assert subscribe_from_many_threads(newsletter) == []
    assert Subscription.objects.count() == 1
    assert Activity.objects.filter(event="subscribed").count() == 1
    assert Subscription.objects.get().profile.subscriptions.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_resubscribing_one_address_activate_it_once(newsletter):
    skip_unless_postgresql()
    subscribe(email="jane@example.com", newsletter=newsletter, source="form")
    unsubscribe(email="jane@example.com", newsletter=newsletter, reason="")

    assert subscribe_from_many_threads(newsletter) == []
    assert Subscription.objects.get().status == "active"
    assert Activity.objects.filter(event="subscribed").count() == 2
