"""An erasure takes the person out of the work still queued: every durable receiver's
call that carries their address or profile, every public form's task, and the dead
letters and webhook events that list them, while the others' queued work goes on."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.durable.decorators import DURABLE_RECEIVERS
from signalpost.durable.models import DeadLetter
from signalpost.durable.services import durable_call_enqueue
from signalpost.introspection import dereference
from signalpost.newsletters.models import Subscription, Suppression
from signalpost.newsletters.services import ConsentEvidence, subscribe
from signalpost.newsletters.suppressions import suppressions_add
from signalpost.newsletters.tasks import (
    preferences_link_request_queue,
    subscribe_queue,
    unsubscribe_queue,
)
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from signalpost.redaction import json_without
from signalpost.signals import CATALOGUE, preferences_link_requested, profile_erased
from signalpost.webhooks.models import WebhookMessage
from signalpost.webhooks.services import endpoint_create
from tests.durable_helpers import run_worker_until_idle
from tests.test_erasure import rows_mentioning
from tests.test_webhooks_and_bounces import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

JANE, MAX = "jane@example.com", "max@example.com"
# The arguments that name a person.
PERSONAL = {"user_email", "profile", "emails"}


def durable_receivers_of_a_person():
    """(signal, durable receiver) for every durable receiver of a catalogue signal whose
    arguments name a person: each can hold the address or profile in the task queue."""
    found = []
    for signal in CATALOGUE:
        if signal is profile_erased or not PERSONAL & set(signal.arguments):
            continue
        for _key, receiver_ref, _sender, _is_async in signal.receivers:
            durable = getattr(dereference(receiver_ref), "durable_receiver", None)
            if durable is not None:
                found.append(pytest.param(signal, durable, id=durable.id))
    return found


@pytest.fixture
def people(newsletter):
    """Jane and Max, each subscribed, each with a delivery of one issue."""
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Hi")
    held = {}
    for email in (JANE, MAX):
        subscription = subscribe(email=email, newsletter=newsletter, source="admin")
        delivery = Delivery.objects.create(issue=issue, profile=subscription.profile, email=email)
        held[email] = {
            "profile": subscription.profile,
            "subscription": subscription,
            "delivery": delivery,
            "newsletter": newsletter,
            "issue": issue,
            "user_email": email,
        }
    return held


def arguments_for(signal, person):
    """Arguments ``signal`` declares, about ``person`` (``emails``: Jane's and Max's)."""
    values = {
        **person,
        "emails": [JANE, MAX],
        "source": "form",
        "reason": "test",
        "bounce_type": "hard",
        "description": "test",
        "subscription_ids": [person["subscription"].pk],
        "changed": {"plan": [None, "pro"]},
        "url": "https://example.com/",
        "is_human": True,
        "tag": "vip",
        "profile_ids": [person["profile"].pk],
        "automation_id": 1,
        "automation_name": "Onboarding",
        "event": "onboarded",
    }
    return {name: values[name] for name in signal.arguments}


def erase(email):
    call_command("erase_profile", email, "--yes", stdout=StringIO())


def queued_payloads():
    return [
        row.args_kwargs["kwargs"]["payload"]
        for row in DBTaskResult.objects.filter(status="READY").order_by("enqueued_at")
    ]


def test_every_durable_receiver_of_a_person_is_checked():
    ids = {param.id for param in durable_receivers_of_a_person()}
    assert {
        "newsletters.email_confirmation_request",
        "newsletters.email_welcome",
        "newsletters.email_preferences_link",
        "webhooks.subscriber.suppressed",
        "webhooks.delivery.failed",
    } <= ids


@pytest.mark.parametrize(("signal", "durable"), durable_receivers_of_a_person())
def test_an_erasure_removes_each_durable_receivers_queued_calls_about_the_person(
    people, signal, durable
):
    for email in (JANE, MAX):
        durable_call_enqueue(
            durable_receiver=durable,
            sender=Subscription,
            signal=signal,
            arguments=arguments_for(signal, people[email]),
        )
    before = queued_payloads()

    erase(JANE)

    after = queued_payloads()
    if "emails" in signal.arguments:
        # One call per batch of addresses: it stays for Max, without Jane.
        assert [payload["emails"] for payload in after] == [[MAX], [MAX]]
    else:
        assert after == [before[1]], "Max's call stays as it was, Jane's is gone"
    assert rows_mentioning(JANE) == []


def test_a_queued_suppression_event_still_reaches_an_endpoint_for_the_others(settings, people):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    try:
        endpoint_create(url=receiver.url, events=["subscriber.suppressed"])
        suppressions_add(
            entries=[(JANE, Suppression.Reason.CLEANED, None), (MAX, "cleaned", None)],
            newsletter=None,
            source="import:mailchimp",
        )

        erase(JANE)
        run_worker_until_idle()
    finally:
        receiver.stop()

    [(_, body)] = receiver.requests
    assert b'"emails": ["max@example.com"]' in body or b'"emails":["max@example.com"]' in body
    assert JANE.encode() not in body
    assert rows_mentioning(JANE) == []
    assert Suppression.objects.filter(email="", reason="cleaned").count() == 1, "her hash"


def test_a_sent_suppression_event_keeps_the_others_addresses(settings, people):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    try:
        endpoint_create(url=receiver.url, events=["subscriber.suppressed"])
        suppressions_add(
            entries=[(JANE, "cleaned", None), (MAX, "cleaned", None)],
            newsletter=None,
            source="import:mailchimp",
        )
        run_worker_until_idle()
    finally:
        receiver.stop()

    erase(JANE)

    [message] = WebhookMessage.objects.filter(event="subscriber.suppressed")
    assert (message.status, message.payload["data"]["emails"]) == ("delivered", [MAX])
    assert rows_mentioning(JANE) == []


def test_a_dead_letter_listing_others_keeps_them_and_one_about_her_goes(people):
    common = {"idempotency_key": "k", "attempts": 5, "error_class": "OSError"}
    common |= {"last_error": "timed out", "failed_at": "2026-12-01T00:00:00Z"}
    listing = DeadLetter.objects.create(
        receiver="webhooks.subscriber.suppressed",
        signal_name="address_suppressed",
        payload={"emails": [JANE, MAX], "newsletter": None, "reason": "cleaned"},
        **common,
    )
    DeadLetter.objects.create(
        receiver="newsletters.email_welcome",
        signal_name="user_subscribed",
        payload={"user_email": JANE, "source": "form"},
        **common,
    )

    erase(JANE)

    [kept] = DeadLetter.objects.all()
    assert (kept.pk, kept.payload["emails"]) == (listing.pk, [MAX])
    assert rows_mentioning(JANE) == []


FORMS = {
    "subscribe": lambda email, newsletter: subscribe_queue(
        email=email, newsletter=newsletter, name="", consent=consent()
    ),
    "unsubscribe": lambda email, newsletter: unsubscribe_queue(
        email=email, newsletter=newsletter, reason="form"
    ),
    "preferences link": lambda email, newsletter: preferences_link_request_queue(email=email),
}


def consent():
    return ConsentEvidence(at=timezone.now(), ip="192.0.2.1", user_agent="test")


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_a_form_request_still_queued_is_dropped_by_the_erasure(people, newsletter, form):
    form(JANE.upper(), newsletter)
    form(MAX, newsletter)
    assert DBTaskResult.objects.filter(status="READY").count() == 2

    erase(JANE)

    [kept] = DBTaskResult.objects.filter(status="READY")
    assert kept.args_kwargs["kwargs"]["email"] == MAX
    run_worker_until_idle()
    assert not Profile.objects.filter(email=JANE).exists(), "nothing brought her back"
    assert rows_mentioning(JANE) == []


def test_a_call_for_the_persons_former_address_goes_by_their_profile(people):
    jane = people[JANE]["profile"]
    durable_call_enqueue(
        durable_receiver=DURABLE_RECEIVERS["newsletters.email_preferences_link"],
        sender=Profile,
        signal=preferences_link_requested,
        arguments={"profile": jane, "user_email": JANE},
    )
    Profile.objects.filter(pk=jane.pk).update(email="jane.new@example.com")

    erase("jane.new@example.com")

    assert not DBTaskResult.objects.filter(status="READY").exists()
    assert rows_mentioning(JANE, "jane.new@example.com") == []


def test_a_list_loses_only_the_erased_address_not_a_longer_one_holding_it():
    data = {"emails": ["AN@example.com", "jan@example.com", "an@example.com.au"], "n": None}

    assert json_without(data, texts=["an@example.com"]) == {
        "emails": ["jan@example.com", "an@example.com.au"],
        "n": None,
    }
    assert json_without({"emails": ["an@example.com"]}, texts=["an@example.com"]) is None
    assert json_without({"user_email": "an@example.com"}, texts=["an@example.com"]) is None
