"""The public forms that take an address do the same work for a stranger as for someone
known, so that neither their answer nor the time it takes tells who is subscribed: they
queue the work, which the worker does (and does again after a failure).

The same work, asserted deterministically: the same SQL statements in the same order
(parameters aside), the same tasks queued and the same rate-limit cache calls. Timings
themselves are measured by ``bench/enumeration.py``.
"""

import re
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

import signalpost.newsletters.tasks
import signalpost.ratelimit
from signalpost.accounts.services import profile_get_or_create
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.services import subscribe, subscription_end
from tests.durable_helpers import run_form_requests

pytestmark = pytest.mark.django_db

KNOWN = "member@example.com"
STRANGER = "stranger@example.com"

QUOTED_STRING = re.compile(r"'(?:[^']|'')*'")
SAVEPOINT_NAME = re.compile(r'"s\d+_x\d+"')
NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
RATE_LIMIT_KEY = re.compile(r"signalpost:ratelimit:(?P<scope>[a-z_]+):[0-9a-f]+:\d+")


def statement_text(sql):
    """``sql`` without its parameters: the statement a database runs for any address."""
    sql = QUOTED_STRING.sub("?", sql)
    sql = SAVEPOINT_NAME.sub("savepoint", sql)
    return NUMBER.sub("?", sql)


class CacheRecorder:
    """Django's cache, noting each call by method and rate-limit scope."""

    def __init__(self, cache):
        self.cache = cache
        self.calls = []

    def __getattr__(self, method):
        function = getattr(self.cache, method)

        def recorded(key, *args, **kwargs):
            match = RATE_LIMIT_KEY.fullmatch(key)
            self.calls.append((method, match["scope"] if match else key))
            return function(key, *args, **kwargs)

        return recorded


@contextmanager
def cache_calls_recorded(monkeypatch):
    recorder = CacheRecorder(signalpost.ratelimit.cache)
    with monkeypatch.context() as patch:
        patch.setattr(signalpost.ratelimit, "cache", recorder)
        yield recorder.calls


@dataclass
class Work:
    """What answering one POST did, with the address taken out."""

    status: int
    body: str
    statements: list
    tasks: list
    cache_calls: list


def work_of_post(client, monkeypatch, path, email, *, headers=None, **fields):
    queued_before = set(DBTaskResult.objects.values_list("id", flat=True))
    with CaptureQueriesContext(connection) as queries, cache_calls_recorded(monkeypatch) as calls:
        response = client.post(path, {"user_email": email, **fields}, headers=headers)
    queued = DBTaskResult.objects.exclude(id__in=queued_before).order_by("enqueued_at")
    return Work(
        status=response.status_code,
        body=response.content.decode().replace(email, "ADDRESS"),
        statements=[statement_text(query["sql"]) for query in queries.captured_queries],
        tasks=[row.task_path for row in queued],
        cache_calls=calls,
    )


def assert_same_work(client, monkeypatch, path, *, headers=None, **fields):
    """POST ``path`` for a throwaway address (warming every cache), then for a stranger and
    for ``KNOWN``: the last two must do the same work."""
    work_of_post(client, monkeypatch, path, "warm-up@example.com", headers=headers, **fields)
    stranger = work_of_post(client, monkeypatch, path, STRANGER, headers=headers, **fields)
    known = work_of_post(client, monkeypatch, path, KNOWN, headers=headers, **fields)
    assert stranger.status == known.status == 200
    assert known.statements == stranger.statements
    assert known.tasks == stranger.tasks
    assert known.cache_calls == stranger.cache_calls
    assert known.body == stranger.body


def profile_only(newsletter):
    profile_get_or_create(email=KNOWN)


def subscription_pending(newsletter):
    profile, _ = profile_get_or_create(email=KNOWN)
    Subscription.objects.create(
        profile=profile,
        newsletter=newsletter,
        status=Subscription.Status.PENDING,
        source=Subscription.Source.FORM,
        requested_at=timezone.now(),
    )


def subscription_active(newsletter):
    subscribe(email=KNOWN, newsletter=newsletter, source=Subscription.Source.ADMIN)


def subscription_ended(newsletter):
    subscription_active(newsletter)
    profile, _ = profile_get_or_create(email=KNOWN)
    subscription_end(profile=profile, newsletter=newsletter, reason="test")


def nobody(newsletter):
    pass


SUBSCRIBE_STATES = [
    nobody,
    profile_only,
    subscription_pending,
    subscription_active,
    subscription_ended,
]


@pytest.mark.parametrize("known_as", SUBSCRIBE_STATES, ids=lambda state: state.__name__)
def test_subscribing_a_known_address_to_a_single_opt_in_newsletter_works_as_a_strangers(
    client, monkeypatch, newsletter, known_as
):
    known_as(newsletter)
    assert_same_work(client, monkeypatch, "/subscribe/", newsletter="weekly", name="Jane")


@pytest.mark.parametrize("known_as", SUBSCRIBE_STATES, ids=lambda state: state.__name__)
def test_subscribing_a_known_address_to_a_double_opt_in_newsletter_works_as_a_strangers(
    client, monkeypatch, double_opt_in_newsletter, known_as
):
    known_as(double_opt_in_newsletter)
    assert_same_work(client, monkeypatch, "/subscribe/", newsletter="careful", name="Jane")


@pytest.mark.parametrize("known_as", SUBSCRIBE_STATES, ids=lambda state: state.__name__)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_subscribing_a_known_address_through_an_embedded_form_works_as_a_strangers(
    client, monkeypatch, newsletter, known_as, accept
):
    Newsletter.objects.filter(pk=newsletter.pk).update(
        embed_allowed=True, embed_origins="https://blog.example.org"
    )
    known_as(newsletter)
    headers = {"Origin": "https://blog.example.org", "Accept": accept}
    assert_same_work(client, monkeypatch, "/embed/weekly/", headers=headers, name="Jane")


@pytest.mark.parametrize(
    "known_as", [nobody, profile_only, subscription_active], ids=lambda state: state.__name__
)
def test_unsubscribing_a_known_address_works_as_a_strangers(
    client, monkeypatch, newsletter, known_as
):
    known_as(newsletter)
    assert_same_work(client, monkeypatch, "/unsubscribe/", newsletter="weekly")


@pytest.mark.parametrize("known_as", [nobody, profile_only], ids=lambda state: state.__name__)
def test_asking_for_the_preference_link_of_a_known_address_works_as_a_strangers(
    client, monkeypatch, newsletter, known_as
):
    known_as(newsletter)
    assert_same_work(client, monkeypatch, "/preferences/")


@pytest.mark.django_db(transaction=True)  # the worker runs the queued work
def test_a_queued_unsubscribe_that_fails_is_run_again_later(client, newsletter, monkeypatch):
    subscription_active(newsletter)
    client.post("/unsubscribe/", {"user_email": KNOWN, "newsletter": "weekly"})

    def database_away(**kwargs):
        raise OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(signalpost.newsletters.tasks, "unsubscribe", database_away)
        run_form_requests()
    assert (
        DBTaskResult.objects.get(status="FAILED").traceback.strip().endswith("database is locked")
    )
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.run_after > timezone.now()
    assert retry.args_kwargs["kwargs"]["attempt"] == 2
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE

    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
    run_form_requests()
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED
