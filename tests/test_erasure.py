"""Erasing a person leaves no copy of their address: not in the task queue, not in dead
letters, not in webhook messages, except the erase event until integrators have it."""

import json
import re
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult

from signalpost.durable.decorators import durable
from signalpost.durable.models import DeadLetter
from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import durable_call_failed
from signalpost.signals import profile_erased
from signalpost.webhooks.models import WebhookMessage
from signalpost.webhooks.services import endpoint_create
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.mail import text_part
from tests.test_webhooks_and_bounces import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

TEXT_FIELDS = {"CharField", "EmailField", "JSONField", "SlugField", "TextField", "URLField"}


def rows_mentioning(text):
    """Return ``(table, column, value)`` for every text or JSON value in the database
    that contains ``text``, ignoring case: what a reviewer scanning the tables finds."""
    found = []
    introspection = connection.introspection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in introspection.table_names(cursor):
            for column in introspection.get_table_description(cursor, table):
                if introspection.get_field_type(column.type_code, column) not in TEXT_FIELDS:
                    continue
                cursor.execute(
                    f"SELECT CAST({quote(column.name)} AS TEXT) FROM {quote(table)} "
                    f"WHERE UPPER(CAST({quote(column.name)} AS TEXT)) LIKE UPPER(%s)",
                    [f"%{text}%"],
                )
                found += [(table, column.name, value) for (value,) in cursor.fetchall()]
    return found


@pytest.fixture
def hook_receiver(settings):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    yield receiver
    receiver.stop()


def erase(email):
    call_command("erase_profile", email, "--yes", stdout=StringIO())


def subscribe_by_form(client, email, newsletter_slug, **extra):
    """POST the subscribe form and run what it queued; the emails that follow stay queued."""
    response = client.post(
        "/subscribe/", {"user_email": email, "newsletter": newsletter_slug, **extra}
    )
    assert response.status_code == 200
    run_form_requests()
    return response


def test_after_an_erasure_only_the_erase_event_holds_the_address_until_delivered(
    client, smtp_inbox, hook_receiver, double_opt_in_newsletter
):
    endpoint_create(url=hook_receiver.url)
    subscribe_by_form(client, "Jane@Example.com", "careful", name="Jane Doe")
    run_worker_until_idle()
    [confirmation] = smtp_inbox.wait_for(1)
    confirm_url = re.search(r"https://\S+/n/careful/confirm/\S+/", text_part(confirmation))
    # The welcome is refused: a dead letter that holds the address.
    smtp_inbox.refuse = {"jane@example.com"}
    client.post(urlsplit(confirm_url.group(0)).path)
    run_worker_until_idle()
    smtp_inbox.refuse = set()
    # Still waiting in the queue when the erasure comes.
    client.post("/preferences/", {"user_email": "jane@example.com"})
    tables = {table for table, _, _ in rows_mentioning("jane@example.com")}
    assert {
        "django_tasks_database_dbtaskresult",
        "durable_deadletter",
        "webhooks_webhookmessage",
    } <= tables

    erase("jane@example.com")

    [(table, column, value)] = rows_mentioning("jane@example.com")
    assert (table, column) == ("webhooks_webhookmessage", "payload")
    assert json.loads(value)["type"] == "subscriber.erased"
    assert rows_mentioning("Jane Doe") == []

    run_worker_until_idle()
    erased = json.loads(hook_receiver.requests[-1][1])
    assert (erased["type"], erased["data"]) == ("subscriber.erased", {"email": "jane@example.com"})
    assert rows_mentioning("jane@example.com") == []
    assert WebhookMessage.objects.get(event="subscriber.erased").status == "delivered"
    assert len(smtp_inbox.envelopes) == 1, "the preferences link was not sent after the erasure"


def test_a_confirmation_still_queued_for_an_erased_person_is_never_sent(
    client, smtp_inbox, double_opt_in_newsletter
):
    subscribe_by_form(client, "jane@example.com", "careful")

    erase("jane@example.com")
    run_worker_until_idle()

    assert smtp_inbox.envelopes == []
    assert not DeadLetter.objects.exists(), "nothing failed on the missing rows"
    assert rows_mentioning("jane@example.com") == []


def test_erasing_an_address_leaves_the_queued_email_of_a_longer_one_alone(
    client, smtp_inbox, double_opt_in_newsletter
):
    subscribe_by_form(client, "an@example.com", "careful")
    subscribe_by_form(client, "jan@example.com", "careful")

    erase("AN@example.com")
    run_worker_until_idle()

    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["jan@example.com"]


def test_an_erase_event_given_up_on_drops_the_address(
    client, settings, hook_receiver, double_opt_in_newsletter
):
    settings.SIGNALPOST_WEBHOOK_MAX_ATTEMPTS = 1
    hook_receiver.failures = 1
    endpoint_create(url=hook_receiver.url, events=["subscriber.erased"])
    subscribe_by_form(client, "jane@example.com", "careful")

    erase("jane@example.com")
    run_worker_until_idle()

    message = WebhookMessage.objects.get()
    assert (message.status, message.payload["data"]) == ("failed", {})
    assert message.attempt_log.count() == 1
    assert rows_mentioning("jane@example.com") == []


def test_a_call_running_during_the_erasure_can_still_finish_without_the_address(
    client, double_opt_in_newsletter
):
    subscribe_by_form(client, "jane@example.com", "careful")
    running = DBTaskResult.objects.get(status="READY")  # the confirmation email's
    running.claim("worker-1")

    erase("jane@example.com")

    running.refresh_from_db()
    assert running.args_kwargs == {"args": [], "kwargs": {}}
    running.set_successful(None)
    assert rows_mentioning("jane@example.com") == []


def test_a_call_failing_after_the_erasure_is_neither_retried_nor_dead_lettered(
    client, double_opt_in_newsletter
):
    subscribe_by_form(client, "jane@example.com", "careful")
    running = DBTaskResult.objects.get(status="READY")  # the confirmation email's
    running.claim("worker-1")
    call = running.args_kwargs["kwargs"]

    erase("jane@example.com")
    durable_call_failed(
        task_result_id=running.id, call=call, policy=RetryPolicy(), error=OSError("timed out")
    )

    assert DBTaskResult.objects.get().status == "FAILED"
    assert not DeadLetter.objects.exists()
    assert rows_mentioning("jane@example.com") == []


erased_addresses = []


@durable(max_attempts=1)
def crm_forget(sender, *, user_email, **kwargs):
    erased_addresses.append(user_email)


def test_a_durable_receiver_of_the_erasure_still_gets_the_address(client, newsletter):
    subscribe_by_form(client, "jane@example.com", "weekly")
    profile_erased.connect(crm_forget, dispatch_uid="tests.crm_forget")
    try:
        erase("jane@example.com")
    finally:
        profile_erased.disconnect(dispatch_uid="tests.crm_forget")
    run_worker_until_idle()

    assert erased_addresses == ["jane@example.com"]
