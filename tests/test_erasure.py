"""Erasing a person leaves no copy of their address: not in the task queue, not in dead
letters, not in webhook messages, except the erase event until integrators have it."""

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.api.tokens import api_token_create
from signalpost.durable.decorators import durable
from signalpost.durable.models import DeadLetter
from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import durable_call_failed, durable_calls_forget
from signalpost.durable.tasks import run_durable_receiver
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create, issue_send
from signalpost.signals import profile_erased
from signalpost.webhooks.models import WebhookAttempt, WebhookMessage
from signalpost.webhooks.services import endpoint_create
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import text_part
from tests.test_webhooks_and_bounces import Receiver, run_retries_now

pytestmark = pytest.mark.django_db(transaction=True)


def rows_mentioning(*texts):
    """Return ``(table, column, value)`` for every value in the database that contains
    any of ``texts``, ignoring case: what a reviewer scanning the tables finds.

    Every column of every table is read as text, so a table or column added later is
    scanned without anyone listing it here. The comparison is Python's (``casefold``),
    so it is the same on every database and for every alphabet.
    """
    found = []
    needles = [text.casefold() for text in texts]
    introspection = connection.introspection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in introspection.table_names(cursor):
            for column in introspection.get_table_description(cursor, table):
                cursor.execute(
                    f"SELECT CAST({quote(column.name)} AS TEXT) FROM {quote(table)} "
                    f"WHERE {quote(column.name)} IS NOT NULL"
                )
                found += [
                    (table, column.name, value)
                    for (value,) in cursor.fetchall()
                    if any(needle in value.casefold() for needle in needles)
                ]
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
    # Without its welcome automation the newsletter welcomes through the durable receiver,
    # whose refused call is a dead letter.
    double_opt_in_newsletter.automations.all().delete()
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


class EchoingEndpoint:
    """A webhook endpoint that answers with the body it received, as some do: the
    first ``failures`` POSTs with a 500, the rest with a 200."""

    def __init__(self, failures=0):
        self.failures = failures
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if endpoint.failures > 0 else 200
                endpoint.failures -= 1
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"received: " + body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def echoing_endpoint(settings):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    endpoint = EchoingEndpoint(failures=2)
    yield endpoint
    endpoint.stop()


JANE = ("Jane.Doe@Example.com", "Jane Doé")
MAX = ("max@example.org", "Max Mustermann")


def spellings(text):
    """``text`` as it is typed, and as JSON escapes it (SQLite stores JSON so)."""
    return {text, json.dumps(text)[1:-1], text.lower()}


def mentions_of(person):
    email, name = person
    return rows_mentioning(*spellings(email), *spellings(name))


def staff_edits_profile(client, email, *, attributes):
    """A staff member saves the profile's change form in the admin (a LogEntry)."""
    profile = Profile.objects.for_email(email).get()
    subscriptions = list(profile.subscription_records.order_by("pk"))
    data = {
        "email": profile.email,
        "user": "",
        "name": profile.name,
        "attributes": json.dumps(attributes),
        "soft_bounce_count": profile.soft_bounce_count,
        "subscription_records-TOTAL_FORMS": len(subscriptions),
        "subscription_records-INITIAL_FORMS": len(subscriptions),
        "subscription_records-MIN_NUM_FORMS": 0,
        "subscription_records-MAX_NUM_FORMS": 1000,
    }
    for index, subscription in enumerate(subscriptions):
        data[f"subscription_records-{index}-id"] = subscription.pk
        data[f"subscription_records-{index}-profile"] = profile.pk
    response = client.post(f"/admin/accounts/profile/{profile.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]


def everything_held_about(client, api, smtp_inbox, people):
    """Leave a trace of each person on every path that stores text."""
    weekly = make_newsletter(slug="weekly", name="The Weekly")
    make_newsletter(slug="imported", name="The Imported")
    careful = make_newsletter(
        slug="careful",
        name="The Careful",
        opt_in="double",
        sender_email="editors@careful.example.com",
    )
    # Welcomed by the durable receiver (no welcome automation), whose refusal is a dead letter.
    careful.automations.all().delete()
    emails = [email for email, _ in people]
    # The form: activity, confirmation tasks, webhook messages (echoed back).
    for email, name in people:
        subscribe_by_form(client, email, "careful", name=name)
    run_worker_until_idle()
    run_retries_now()
    # Confirming: the welcome is refused, a dead letter with the server's reply.
    # Refused by policy (5.7.1), naming the address as Postfix does: a 5.1.x refusal would
    # be a hard bounce and end the subscriptions the issues below need.
    smtp_inbox.refuse_with = {
        email.lower(): f"554 5.7.1 <{email}>: Recipient address rejected: Access denied"
        for email in emails
    }
    for confirmation in smtp_inbox.wait_for(len(people)):
        link = re.search(r"https://\S+/n/careful/confirm/\S+/", text_part(confirmation))
        client.post(urlsplit(link.group(0)).path)
    run_worker_until_idle()
    # The API: a sign-up with consent evidence, attributes, an import.
    for email, name in people:
        response = api(
            "post",
            "/subscriptions",
            {"email": email, "newsletter": "weekly", "name": name},
            HTTP_USER_AGENT=f"CRM sync for {name}",
        )
        assert response.status_code == 202
        assert (
            api("patch", f"/profiles/{email}", {"attributes": {"city": "Köln"}}).status_code == 200
        )
    csv_body = "email,name\n" + "".join(f"{email},{name}\n" for email, name in people)
    assert api("post", "/newsletters/imported/imports", raw=csv_body).status_code == 200
    # An issue refused for everyone (failed deliveries, delivery.failed), then one
    # refused for now (deliveries queued again with the server's reply), then one sent.
    issue_send(issue=issue_create(newsletter=weekly, subject="One", body_markdown="Hello"))
    run_worker_until_idle()
    run_retries_now()
    smtp_inbox.refuse_with = {}
    smtp_inbox.temporarily_refuse = {email.lower(): 1 for email in emails}
    issue_send(issue=issue_create(newsletter=weekly, subject="Two", body_markdown="Hello"))
    run_worker_until_idle()
    issue_send(issue=issue_create(newsletter=weekly, subject="Three", body_markdown="Hello"))
    run_worker_until_idle()
    assert Delivery.objects.filter(status="sent").count() == len(people)
    # Staff at work in the admin: sessions, admin history.
    staff = get_user_model().objects.create_superuser("editor", "editor@news.example.com", "pw")
    client.force_login(staff)
    for email, _ in people:
        staff_edits_profile(client, email, attributes={"city": "Köln", "vip": True})
    # Waiting in the queue when the erasure comes.
    for email, _ in people:
        client.post("/preferences/", {"user_email": email})


@pytest.fixture
def api(client):
    token = api_token_create(name="crm")[1]

    def call(method, path, body=None, *, raw=None, **extra):
        data = raw if raw is not None else json.dumps(body) if body is not None else None
        return getattr(client, method)(
            f"/api/v1{path}",
            data=data,
            content_type="text/csv" if raw is not None else "application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **extra,
        )

    return call


@pytest.mark.parametrize("way", ["command", "api"])
def test_an_erased_person_leaves_no_trace_in_any_table_and_the_other_keeps_theirs(
    client, api, smtp_inbox, echoing_endpoint, way
):
    endpoint_create(url=echoing_endpoint.url)
    everything_held_about(client, api, smtp_inbox, [JANE, MAX])
    for person in (JANE, MAX):
        tables = {table for table, _, _ in mentions_of(person)}
        assert {
            "accounts_profile",
            "django_admin_log",
            "django_tasks_database_dbtaskresult",
            "durable_deadletter",
            "newsletters_subscription",
            "publishing_delivery",
            "webhooks_webhookmessage",
        } <= tables, "the scenario reaches every table that copies a person"
    assert WebhookAttempt.objects.filter(response_excerpt__startswith="received: {").count() > 4
    kept_before = Counter(mentions_of(MAX))

    if way == "command":
        erase(JANE[0])
    else:
        response = api("post", "/profiles/erase", {"email": JANE[0]})
        assert response.json() == {"status": "erased"}

    # Only the erase event still names her, until the endpoint has it.
    [(table, _, payload)] = mentions_of(JANE)
    assert table == "webhooks_webhookmessage"
    assert json.loads(payload)["type"] == "subscriber.erased"
    kept_after = Counter(mentions_of(MAX))
    assert kept_after == kept_before, "the other person's rows and texts are all still there"
    run_retries_now()
    run_worker_until_idle()
    assert mentions_of(JANE) == []
    assert Counter(mentions_of(MAX)) >= kept_before
    assert Delivery.objects.filter(email="").count() == 3, "her deliveries count, anonymised"
    assert LogEntry.objects.filter(object_repr__icontains=MAX[0]).exists()


def test_deleting_a_profile_in_the_admin_erases_it(client):
    # Staff may delete only a profile with nothing attached (subscriptions and
    # activity are not theirs to delete), such as one made for a user account.
    profile = Profile.objects.create(email="jane@example.com", name="Jane Doe")
    staff = get_user_model().objects.create_superuser("editor", "editor@news.example.com", "pw")
    client.force_login(staff)

    response = client.post(f"/admin/accounts/profile/{profile.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Profile.objects.filter(pk=profile.pk).exists()
    assert LogEntry.objects.get().action_flag == DELETION, "the deletion is still on record"
    assert rows_mentioning("jane@example.com", "Jane Doe") == []


def test_an_endpoint_echoing_the_body_is_logged_without_the_address_or_name(
    client, echoing_endpoint, newsletter
):
    endpoint_create(url=echoing_endpoint.url)
    subscribe_by_form(client, "jane@example.com", "weekly", name="Jane Doé")
    run_worker_until_idle()
    run_retries_now()

    excerpts = list(WebhookAttempt.objects.values_list("response_excerpt", flat=True))
    assert len(excerpts) >= 2 and all(e.startswith("received: {") for e in excerpts)
    assert not [excerpt for excerpt in excerpts if "jane" in excerpt.lower()]
    assert all('"name":"[redacted]"' in excerpt for excerpt in excerpts), excerpts
    assert all('"newsletter":"weekly"' in excerpt for excerpt in excerpts), "the rest stays"


def test_a_refusal_naming_the_recipient_is_stored_without_the_address(smtp_inbox, newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source="admin")
    smtp_inbox.refuse = {"jane@example.com"}

    issue_send(issue=issue_create(newsletter=newsletter, subject="One", body_markdown="Hi"))
    run_worker_until_idle()

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.email) == ("failed", "jane@example.com")
    assert "550" in delivery.last_error and "Recipient address rejected" in delivery.last_error
    assert "jane" not in delivery.last_error


def test_erasing_a_profile_with_a_user_account_says_the_account_keeps_the_address(db):
    user = get_user_model().objects.create_user("jane", "jane@example.com")
    stderr = StringIO()

    call_command("erase_profile", "jane@example.com", "--yes", stdout=StringIO(), stderr=stderr)

    assert not Profile.objects.exists()
    assert get_user_model().objects.filter(pk=user.pk).exists(), "not Signalpost's to delete"
    assert "user account 'jane' still has this address" in stderr.getvalue()


def test_erasing_an_address_leaves_a_longer_ones_dead_letter_and_admin_history_alone(
    client, smtp_inbox, double_opt_in_newsletter
):
    smtp_inbox.refuse = {"an@example.com", "jan@example.com"}
    subscribe_by_form(client, "an@example.com", "careful")
    subscribe_by_form(client, "jan@example.com", "careful")
    run_worker_until_idle()
    staff = get_user_model().objects.create_superuser("editor", "editor@news.example.com", "pw")
    client.force_login(staff)
    staff_edits_profile(client, "jan@example.com", attributes={"vip": True})

    erase("an@example.com")

    [dead_letter] = DeadLetter.objects.all()
    assert dead_letter.payload["user_email"] == "jan@example.com"
    assert "jan@example.com" in dead_letter.last_error
    assert LogEntry.objects.get().object_repr == "jan@example.com"
    assert rows_mentioning("<an@example.com>", "'an@example.com'", '"an@example.com"') == []


def test_forgetting_keeps_waiting_calls_only_of_the_signals_the_caller_names():
    """The task queue knows no signal by name: the erasure says whose waiting calls stay."""

    def waiting_call(signal):
        return run_durable_receiver.enqueue(
            receiver="tests.durable_receivers.anything",
            signal=signal,
            sender=None,
            payload={"user_email": "jane@example.com"},
            idempotency_key=signal,
            attempt=1,
            dead_letter_id=None,
        ).id

    kept, _ = waiting_call("profile_erased"), waiting_call("user_subscribed")

    durable_calls_forget(
        texts=["jane@example.com"], references={}, waiting_calls_kept=[profile_erased]
    )
    assert [str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)] == [kept]
    durable_calls_forget(texts=["jane@example.com"], references={})
    assert not DBTaskResult.objects.exists()
