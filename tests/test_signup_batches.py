"""A worker writes the sign-ups it claims together set-based: one INSERT per table for the
batch's new addresses, every signal still sent once per person with ``subscribe``'s
arguments, and anything unusual (a known, malformed or repeated address, a failing
receiver) handled alone, exactly as one sign-up on its own would be."""

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.dispatch import receiver
from django.tasks import TaskResultStatus
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.automations.models import Automation, Enrollment
from signalpost.durable.services import task_enqueue
from signalpost.newsletters.models import Subscription, Suppression
from signalpost.newsletters.services import ConsentEvidence, subscribe
from signalpost.newsletters.suppressions import suppressions_add
from signalpost.newsletters.tasks import subscribe_from_form, subscribe_queue
from signalpost.signals import subscription_requested, user_subscribed
from tests.durable_helpers import (
    kill_mid_way_and_restart,
    run_form_requests,
    run_worker_until_idle,
    workers_send_to_inbox,
)
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = [f"reader{number}@example.com" for number in range(8)]
CONSENT = ConsentEvidence(
    at=datetime(2026, 12, 3, 7, 0, tzinfo=UTC), ip="203.0.113.7", user_agent="Browser/1.0"
)


def sign_up(newsletter, addresses, *, name="Reader"):
    """Queue a sign-up per address as ``POST /subscribe/`` does."""
    for address in addresses:
        subscribe_queue(email=address, newsletter=newsletter, name=name, consent=CONSENT)


def queue_raw(newsletter, **call):
    """Queue a form task with arguments the form would never write (a hostile row)."""
    call.setdefault("newsletter_id", newsletter.pk)
    call.setdefault("name", "Reader")
    consent = {"at": CONSENT.at.isoformat(), "ip": CONSENT.ip, "user_agent": "x"}
    call.setdefault("consent", consent)
    task_enqueue(subscribe_from_form, **call)


def form_tasks(status):
    return DBTaskResult.objects.filter(task_path__endswith="subscribe_from_form", status=status)


def statuses(newsletter):
    return dict(
        Subscription.objects.filter(newsletter=newsletter).values_list("profile__email", "status")
    )


def inserts_into(queries, model):
    table = model._meta.db_table
    return [q for q in queries if re.match(rf'INSERT INTO "?{table}"? ', q["sql"])]


def test_a_batch_writes_each_table_once_and_everyone_gets_one_confirmation(
    smtp_inbox, double_opt_in_newsletter
):
    sign_up(double_opt_in_newsletter, PEOPLE)
    with CaptureQueriesContext(connection) as queries:
        run_form_requests()
    for model in (Profile, Subscription, Activity, DBTaskResult):
        assert len(inserts_into(queries.captured_queries, model)) == 1, model.__name__
    assert statuses(double_opt_in_newsletter) == dict.fromkeys(PEOPLE, "pending")
    assert form_tasks(TaskResultStatus.SUCCESSFUL).count() == len(PEOPLE)
    run_worker_until_idle()
    messages = smtp_inbox.wait_for(len(PEOPLE))
    assert sorted(message["To"] for message in messages) == PEOPLE
    assert Activity.objects.filter(event="subscription_requested").count() == len(PEOPLE)


def test_each_person_gets_the_signal_once_with_what_subscribe_sends(double_opt_in_newsletter):
    sign_up(double_opt_in_newsletter, PEOPLE)
    with SignalRecorder(subscription_requested) as requested:
        run_form_requests()
    assert [call["user_email"] for call in requested.calls] == PEOPLE, "once each, in order"
    for call in requested.calls:
        subscription = call["subscription"]
        assert set(call) >= {"profile", "newsletter", "subscription", "user_email", "source"}
        assert call["profile"].email == call["user_email"] == subscription.profile.email
        assert call["newsletter"] == double_opt_in_newsletter
        assert call["source"] == "form"
        stored = Subscription.objects.get(pk=subscription.pk)
        assert (stored.status, stored.consent_ip, stored.consent_at) == (
            "pending",
            "203.0.113.7",
            CONSENT.at,
        )


def test_a_batch_writes_the_rows_one_sign_up_at_a_time_would(double_opt_in_newsletter):
    alone = make_newsletter(slug="alone", opt_in="double")
    subscribe(
        email="solo@example.com", newsletter=alone, source="form", name="Reader", consent=CONSENT
    )
    sign_up(double_opt_in_newsletter, ["solo2@example.com", "solo3@example.com"])
    run_form_requests()
    fields = ["status", "source", "consent_at", "consent_ip", "consent_user_agent"]
    one = Subscription.objects.filter(newsletter=alone).values(*fields).get()
    batched = Subscription.objects.filter(profile__email="solo2@example.com").values(*fields).get()
    assert {**batched, "consent_user_agent": ""} == {**one, "consent_user_agent": ""}
    profile = Profile.objects.get(email="solo2@example.com")
    assert (profile.name, profile.attributes) == ("Reader", {})
    activity = Activity.objects.get(profile=profile)
    assert (activity.event, activity.newsletter_id) == (
        "subscription_requested",
        double_opt_in_newsletter.pk,
    )


def test_single_opt_in_activates_everyone_once_with_user_subscribed(newsletter, smtp_inbox):
    sign_up(newsletter, PEOPLE[:4])
    with SignalRecorder(user_subscribed) as subscribed:
        run_form_requests()
    assert sorted(call["user_email"] for call in subscribed.calls) == PEOPLE[:4]
    assert statuses(newsletter) == dict.fromkeys(PEOPLE[:4], "active")
    for address in PEOPLE[:4]:
        profile = Profile.objects.get(email=address)
        assert list(profile.subscriptions.all()) == [newsletter]


def test_a_batch_enrolls_everyone_in_the_welcome_automation_once_by_one_insert(newsletter):
    welcome = Automation.objects.get(newsletter=newsletter, trigger=Automation.Trigger.SUBSCRIBED)
    sign_up(newsletter, PEOPLE)
    with CaptureQueriesContext(connection) as queries:
        run_form_requests()
    enrolled = Enrollment.objects.filter(automation=welcome).values_list(
        "profile__email", flat=True
    )
    assert sorted(enrolled) == PEOPLE
    assert len(inserts_into(queries.captured_queries, Enrollment)) == 1


def test_a_malformed_or_oversized_address_in_the_middle_fails_alone(
    smtp_inbox, double_opt_in_newsletter
):
    sign_up(double_opt_in_newsletter, PEOPLE[:3])
    queue_raw(double_opt_in_newsletter, email="not an address")
    queue_raw(double_opt_in_newsletter, email=f"{'a' * 300}@example.com")
    queue_raw(double_opt_in_newsletter, email="root@[127.0.0.1]")
    queue_raw(double_opt_in_newsletter, email=None)
    sign_up(double_opt_in_newsletter, PEOPLE[3:6])
    run_form_requests()
    assert statuses(double_opt_in_newsletter) == dict.fromkeys(PEOPLE[:6], "pending")
    assert Profile.objects.count() == 6, "nothing written for the bad rows"
    failed = form_tasks(TaskResultStatus.FAILED)
    assert failed.count() == 4, "each bad row failed on its own"
    retries = form_tasks(TaskResultStatus.READY)
    assert sorted(r.args_kwargs["kwargs"]["attempt"] for r in retries) == [2, 2, 2, 2]
    run_worker_until_idle()  # the emails, and the retries (not due yet) stay queued
    assert sorted(m["To"] for m in smtp_inbox.wait_for(6)) == PEOPLE[:6]


def test_hostile_names_in_a_batch_are_cleaned_as_one_sign_up_cleans_them(
    smtp_inbox, double_opt_in_newsletter
):
    hostile = {
        "crlf@example.com": "Eve\r\nBcc: victim@example.com",
        "long@example.com": "N" * 10_000,
        "script@example.com": "<script>alert(1)</script>",
        "tab@example.com": "Mallory\tthe\x7fthird",
    }
    for address, name in hostile.items():
        queue_raw(double_opt_in_newsletter, email=address, name=name)
    queue_raw(double_opt_in_newsletter, email="wrongtype@example.com", name={"a": 1})
    sign_up(double_opt_in_newsletter, PEOPLE[:2])
    run_form_requests()
    names = dict(Profile.objects.values_list("email", "name"))
    assert names["crlf@example.com"] == "Eve Bcc: victim@example.com"
    assert names["long@example.com"] == "N" * 200
    assert names["script@example.com"] == "<script>alert(1)</script>", "stored as typed"
    assert names["tab@example.com"] == "Mallory the third"
    assert set(statuses(double_opt_in_newsletter)) == {*hostile, *PEOPLE[:2]}
    [failed] = form_tasks(TaskResultStatus.FAILED)
    assert failed.args_kwargs["kwargs"]["email"] == "wrongtype@example.com", "it fails alone"
    run_worker_until_idle()
    messages = smtp_inbox.wait_for(len(hostile) + 2)
    assert not any("victim" in ",".join(m.get_all("Bcc", [])) for m in messages)
    assert all("\n" not in m["To"] for m in messages)


def test_one_address_twice_in_a_batch_makes_one_subscription_and_one_email(
    smtp_inbox, double_opt_in_newsletter
):
    sign_up(double_opt_in_newsletter, ["ann@example.com", "bob@example.com"])
    sign_up(double_opt_in_newsletter, ["ANN@Example.com", "ann@example.com"])
    with SignalRecorder(subscription_requested) as requested:
        run_form_requests()
    assert sorted(call["user_email"] for call in requested.calls) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert statuses(double_opt_in_newsletter) == {
        "ann@example.com": "pending",
        "bob@example.com": "pending",
    }
    assert form_tasks(TaskResultStatus.SUCCESSFUL).count() == 4
    run_worker_until_idle()
    assert sorted(m["To"] for m in smtp_inbox.wait_for(2)) == ["ann@example.com", "bob@example.com"]
    assert len(smtp_inbox.messages) == 2


def test_a_known_address_in_a_batch_follows_subscribe_rules(double_opt_in_newsletter, newsletter):
    subscribe(email=PEOPLE[1], newsletter=newsletter, source="admin")  # active elsewhere
    subscribe(email=PEOPLE[2], newsletter=double_opt_in_newsletter, source="admin")  # active here
    sign_up(double_opt_in_newsletter, PEOPLE[:4])
    with SignalRecorder(subscription_requested) as requested:
        run_form_requests()
    assert sorted(call["user_email"] for call in requested.calls) == [
        PEOPLE[0],
        PEOPLE[1],
        PEOPLE[3],
    ]
    assert statuses(double_opt_in_newsletter) == {
        PEOPLE[0]: "pending",
        PEOPLE[1]: "pending",
        PEOPLE[2]: "active",
        PEOPLE[3]: "pending",
    }


def test_a_suppressed_address_in_the_middle_must_confirm_and_the_rest_join_at_once(
    smtp_inbox, newsletter
):
    sign_up(newsletter, PEOPLE[:5])
    # It bounced elsewhere after asking, before the worker ran the batch.
    suppressions_add(entries=[(PEOPLE[2], "bounced", None)], newsletter=None, source="bounce")
    with (
        SignalRecorder(user_subscribed) as subscribed,
        SignalRecorder(subscription_requested) as requested,
    ):
        run_form_requests()
    assert [call["user_email"] for call in requested.calls] == [PEOPLE[2]]
    assert sorted(call["user_email"] for call in subscribed.calls) == [
        PEOPLE[0],
        PEOPLE[1],
        PEOPLE[3],
        PEOPLE[4],
    ]
    assert statuses(newsletter)[PEOPLE[2]] == "pending"
    assert Suppression.objects.filter(email=PEOPLE[2]).exists(), "only confirming lifts it"


def test_a_receiver_failing_for_one_person_fails_that_person_alone_and_retries(
    smtp_inbox, double_opt_in_newsletter
):
    @receiver(subscription_requested, dispatch_uid="tests.fails_for_one")
    def fails_for_one(sender, *, user_email, **kwargs):
        if user_email == PEOPLE[3]:
            raise RuntimeError("this receiver refuses reader3")

    try:
        sign_up(double_opt_in_newsletter, PEOPLE)
        run_form_requests()
    finally:
        subscription_requested.disconnect(dispatch_uid="tests.fails_for_one")
    expected = dict.fromkeys(PEOPLE, "pending")
    del expected[PEOPLE[3]]
    assert statuses(double_opt_in_newsletter) == expected, "the others are subscribed"
    assert Activity.objects.filter(event="subscription_requested").count() == len(PEOPLE) - 1
    [failed] = form_tasks(TaskResultStatus.FAILED)
    assert failed.args_kwargs["kwargs"]["email"] == PEOPLE[3]
    assert "refuses reader3" in failed.traceback
    [retry] = form_tasks(TaskResultStatus.READY)
    assert retry.args_kwargs["kwargs"]["attempt"] == 2
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
    run_worker_until_idle()
    assert sorted(m["To"] for m in smtp_inbox.wait_for(len(PEOPLE))) == PEOPLE
    assert len(smtp_inbox.messages) == len(PEOPLE), "one email each, the retried one included"


def test_a_newsletter_deleted_since_the_request_leaves_the_others_alone(double_opt_in_newsletter):
    gone = make_newsletter(slug="gone", opt_in="double")
    sign_up(double_opt_in_newsletter, PEOPLE[:2])
    sign_up(gone, ["late@example.com"])
    sign_up(double_opt_in_newsletter, PEOPLE[2:4])
    gone.delete()
    run_form_requests()
    assert statuses(double_opt_in_newsletter) == dict.fromkeys(PEOPLE[:4], "pending")
    assert not Profile.objects.filter(email="late@example.com").exists()
    assert form_tasks(TaskResultStatus.SUCCESSFUL).count() == 5


SIGN_UPS = 120


def test_a_worker_killed_mid_batch_loses_no_sign_up(
    tmp_path, smtp_inbox, settings, monkeypatch, double_opt_in_newsletter
):
    workers_send_to_inbox(settings, monkeypatch, batch_size=50, rate_per_second=60)
    monkeypatch.setenv("WORKER_LEASE_SECONDS", "2")
    monkeypatch.setenv("WORKER_BATCH_SIZE", "5")
    addresses = [f"crash{number}@example.com" for number in range(SIGN_UPS)]
    sign_up(double_opt_in_newsletter, addresses)
    # A batch's confirmation emails go over one connection and are recorded with the
    # batch: the batch in flight (5 here) may go again, each copy with its first's
    # Message-ID (the call's idempotency key), which mailbox providers take for one.
    received = kill_mid_way_and_restart(
        tmp_path,
        smtp_inbox,
        recipients=SIGN_UPS,
        done=lambda: len({e.rcpt_tos[0] for e in smtp_inbox.envelopes}) == SIGN_UPS,
        what="every confirmation email",
        may_double=5,
    )
    assert set(received) == set(addresses)
    for address in (address for address, count in received.items() if count > 1):
        assert len({message["Message-ID"] for message in smtp_inbox.to(address)}) == 1
    assert statuses(double_opt_in_newsletter) == dict.fromkeys(addresses, "pending")
    assert Activity.objects.filter(event="subscription_requested").count() == SIGN_UPS
