"""The admin's dashboard: axes that read right for small lists, new and lost per day, sends."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from signalpost.publishing.selectors import subscribers_new_and_lost
from signalpost.publishing.services import issue_create, issue_send
from signalpost.publishing.templatetags.signalpost_dashboard import axis_ticks
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (12, [0, 5, 10, 15]),
        (240, [0, 100, 200, 300]),
        (152_000, [0, 50_000, 100_000, 150_000, 200_000]),
    ],
)
def test_a_growth_axis_has_round_ticks_up_to_at_least_the_largest_count(maximum, ticks):
    assert axis_ticks(maximum) == ticks


def test_new_and_lost_per_day_count_subscriptions_started_and_ended_that_day():
    letter = make_newsletter()
    for name in ["ann", "bob", "cat"]:
        subscribe(email=f"{name}@example.com", newsletter=letter, source="admin")
    unsubscribe(email="bob@example.com", newsletter=letter, reason="test")
    Subscription.objects.filter(profile__email="cat@example.com").update(
        subscribed_at=timezone.now() - timedelta(days=2)
    )

    days = subscribers_new_and_lost(days=7)

    assert len(days) == 7
    assert days[-1] == (timezone.localdate(), 2, 1)
    assert days[-3][1:] == (1, 0)
    assert sum(new for _, new, _ in days) == 3


def _dashboard_queries(client):
    cache.clear()  # the charts and sent issues' counts are cached: count them all each time
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


def test_the_dashboard_runs_as_many_queries_for_eight_sends_as_for_one(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    letter = make_newsletter()
    subscribe(email="ann@example.com", newsletter=letter, source="admin")

    def send(count):
        for number in range(count):
            issue_send(
                issue=issue_create(newsletter=letter, subject=f"N{number}", body_markdown="x")
            )

    send(1)
    one = _dashboard_queries(client)
    send(7)

    assert _dashboard_queries(client) == one
    page = client.get("/admin/").content.decode()
    assert page.count('<progress max="100"') == 8
