"""Staff see and manage webhook endpoints, their messages and every attempt in the admin,
through the same services (and the same URL checks) as the API."""

import pytest
from django_tasks_db.models import DBTaskResult

from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from tests.test_admin import actions_offered, run_action, staff_with

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/webhooks/webhookendpoint/"
MESSAGES = "/admin/webhooks/webhookmessage/"
PUBLIC_URL = "https://93.184.215.14/hook"


@pytest.fixture
def endpoint():
    return WebhookEndpoint.objects.create(url=PUBLIC_URL, description="CRM")


@pytest.fixture
def given_up(endpoint):
    message = WebhookMessage.objects.create(
        endpoint=endpoint,
        event="subscriber.subscribed",
        event_id="evt-1",
        payload={"type": "subscriber.subscribed", "data": {"newsletter": "weekly"}},
        status=WebhookMessage.Status.FAILED,
        attempts=8,
    )
    WebhookAttempt.objects.create(
        message=message, number=8, status_code=503, response_excerpt="upstream is down"
    )
    return message


def add_endpoint(client, **fields):
    data = {"url": PUBLIC_URL, "description": "", "is_active": "on", **fields}
    return client.post(f"{ENDPOINTS}add/", data)


def test_staff_see_a_messages_attempts_and_what_the_endpoint_answered(client, given_up):
    staff_with(client, "webhooks.view_webhookendpoint", "webhooks.view_webhookmessage")
    assert PUBLIC_URL in client.get(ENDPOINTS).content.decode()
    assert "subscriber.subscribed" in client.get(MESSAGES).content.decode()

    page = client.get(f"{MESSAGES}{given_up.pk}/change/").content.decode()

    assert "upstream is down" in page
    assert "503" in page


def test_an_endpoint_added_in_the_admin_shows_its_secret_once(client):
    staff_with(client, "webhooks.add_webhookendpoint", "webhooks.view_webhookendpoint")

    response = add_endpoint(client, events=["subscriber.subscribed"], description="CRM")

    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.events) == (PUBLIC_URL, ["subscriber.subscribed"])
    shown = [str(message) for message in response.wsgi_request._messages]
    assert any(endpoint.secret in message for message in shown)
    client.get(ENDPOINTS)  # where the message is shown, once
    assert endpoint.secret not in client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/hook", "http://10.0.0.5/hook", "ftp://93.184.215.14/", "not a url"]
)
def test_an_endpoint_inside_the_network_or_malformed_is_refused_on_the_form(client, url):
    staff_with(client, "webhooks.add_webhookendpoint", "webhooks.view_webhookendpoint")

    response = add_endpoint(client, url=url)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_event_is_refused_on_the_form(client):
    staff_with(client, "webhooks.add_webhookendpoint", "webhooks.view_webhookendpoint")
    response = add_endpoint(client, events=["subscriber.hacked"])
    assert response.status_code == 200
    assert "events" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoints_events_change_but_its_url_does_not(client, endpoint):
    staff_with(client, "webhooks.change_webhookendpoint", "webhooks.view_webhookendpoint")

    response = client.post(
        f"{ENDPOINTS}{endpoint.pk}/change/",
        {"url": "http://10.0.0.5/", "description": "CRM", "events": ["issue.sent"]},
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.is_active) == (
        PUBLIC_URL,
        ["issue.sent"],
        False,
    )


def test_a_given_up_message_can_be_tried_once_more(client, given_up):
    staff_with(client, "webhooks.change_webhookmessage", "webhooks.view_webhookmessage")
    assert "redeliver_selected" in actions_offered(client, MESSAGES)

    run_action(client, MESSAGES, "redeliver_selected", given_up.pk)

    given_up.refresh_from_db()
    assert given_up.status == WebhookMessage.Status.PENDING
    assert DBTaskResult.objects.filter(task_path__endswith="webhook_message_deliver").count() == 1


def test_view_only_staff_cannot_retry_messages_or_rotate_secrets(client, endpoint, given_up):
    staff_with(client, "webhooks.view_webhookendpoint", "webhooks.view_webhookmessage")
    assert "redeliver_selected" not in actions_offered(client, MESSAGES)
    assert "rotate_secret_selected" not in actions_offered(client, ENDPOINTS)
    secret = endpoint.secret

    run_action(client, MESSAGES, "redeliver_selected", given_up.pk)
    run_action(client, ENDPOINTS, "rotate_secret_selected", endpoint.pk)

    given_up.refresh_from_db()
    endpoint.refresh_from_db()
    assert (given_up.status, endpoint.secret) == (WebhookMessage.Status.FAILED, secret)


def test_rotating_a_secret_shows_the_new_one_once(client, endpoint):
    staff_with(client, "webhooks.change_webhookendpoint", "webhooks.view_webhookendpoint")
    old = endpoint.secret

    response = run_action(client, ENDPOINTS, "rotate_secret_selected", endpoint.pk)

    endpoint.refresh_from_db()
    assert endpoint.secret != old
    shown = [str(message) for message in response.wsgi_request._messages]
    assert any(endpoint.secret in message for message in shown)


def test_deleting_an_endpoint_deletes_its_messages(client, given_up):
    staff_with(
        client,
        "webhooks.delete_webhookendpoint",
        "webhooks.view_webhookendpoint",
        "webhooks.delete_webhookmessage",
    )
    endpoint = given_up.endpoint

    client.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"})

    assert not WebhookEndpoint.objects.exists()
    assert not WebhookMessage.objects.exists()
