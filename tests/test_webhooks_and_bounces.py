"""Outgoing webhooks (signed, retried, logged, never inside our network) and incoming
bounces and complaints through django-anymail."""

import base64
import hashlib
import hmac
import json
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import ConsentEvidence, subscribe, subscription_confirm
from signalpost.newsletters.suppressions import suppressions_add
from signalpost.newsletters.tasks import subscribe_queue
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from signalpost.signals import bounce_received, complaint_received
from signalpost.webhooks import connections as webhook_connections
from signalpost.webhooks import receivers as webhook_receivers
from signalpost.webhooks.connections import opener_for
from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from signalpost.webhooks.selectors import endpoints_active_exist
from signalpost.webhooks.services import endpoint_create, endpoint_delete
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

CONSENT = ConsentEvidence(at=timezone.now(), ip="203.0.113.7", user_agent="Browser/1.0")


class Receiver:
    """An HTTP server on loopback that records webhook POSTs and fails the first few."""

    def __init__(self, failures=0, tls=None):
        self.requests = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = 500 if receiver.failures > 0 else 200
                receiver.failures -= 1
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"boom" if status == 500 else b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def hook_receiver(settings):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    receivers = []

    def start(failures=0, tls=None):
        receiver = Receiver(failures, tls)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.stop()


def verify(secret, headers, body):
    """What an integrator does: recompute the signature over timestamp and body."""
    fields = dict(part.split("=", 1) for part in headers["Signalpost-Signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def run_retries_now():
    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())
    run_worker_until_idle()


def test_a_subscribe_posts_a_signed_event_to_the_endpoint(hook_receiver):
    receiver = hook_receiver()
    endpoint = endpoint_create(url=receiver.url, events=["subscriber.subscribed"])
    letter = make_newsletter(slug="weekly")
    subscribe(email="jane@example.com", name="Jane", newsletter=letter, source="form")
    run_worker_until_idle()

    [(headers, body)] = receiver.requests
    assert verify(endpoint.secret, headers, body)
    assert not verify("whsec_wrong", headers, body)
    event = json.loads(body)
    assert event["type"] == "subscriber.subscribed"
    assert event["data"] == {
        "email": "jane@example.com",
        "name": "Jane",
        "newsletter": "weekly",
        "status": "active",
        "source": "form",
    }
    assert headers["Signalpost-Event"] == "subscriber.subscribed"
    message = WebhookMessage.objects.get()
    assert message.status == "delivered"
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.response_excerpt) == (200, "ok")
    assert attempt.latency_ms is not None


def test_a_failing_endpoint_is_retried_and_every_attempt_logged(hook_receiver):
    receiver = hook_receiver(failures=2)
    endpoint_create(url=receiver.url)
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    run_worker_until_idle()
    assert WebhookMessage.objects.get().status == "pending"

    run_retries_now()
    run_retries_now()

    assert len(receiver.requests) == 3
    assert [attempt.status_code for attempt in WebhookAttempt.objects.order_by("number")] == [
        500,
        500,
        200,
    ]
    assert WebhookAttempt.objects.first().response_excerpt == "boom"
    assert WebhookMessage.objects.get().status == "delivered"
    ids = {headers["Signalpost-Delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1, "a retry is the same delivery"


def test_an_endpoint_gets_only_the_events_it_asked_for(hook_receiver):
    receiver = hook_receiver()
    endpoint_create(url=receiver.url, events=["subscriber.unsubscribed"])
    letter = make_newsletter(slug="weekly")
    subscribe(email="jane@example.com", newsletter=letter, source="form")
    from signalpost.newsletters.services import unsubscribe

    unsubscribe(email="jane@example.com", newsletter=letter, reason="bye")
    run_worker_until_idle()
    assert [json.loads(body)["type"] for _, body in receiver.requests] == [
        "subscriber.unsubscribed"
    ]


def test_without_endpoints_no_webhook_work_is_queued(db):
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="admin")
    paths = DBTaskResult.objects.values_list("task_path", "args_kwargs")
    assert not any("webhooks" in json.dumps(kwargs) for _, kwargs in paths)


def webhook_work_queued():
    """How many durable webhook calls are waiting (one per signal sent while endpoints exist)."""
    kwargs = DBTaskResult.objects.values_list("args_kwargs", flat=True)
    return sum(str(call["kwargs"].get("receiver")).startswith("webhooks.") for call in kwargs)


@pytest.fixture
def shared_cache(settings, tmp_path):
    """A cache that every process shares, as Redis is in production (here, files)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }


def test_with_a_shared_cache_subscribing_does_not_ask_the_database_for_endpoints(shared_cache):
    letter = make_newsletter()
    subscribe(email="first@example.com", newsletter=letter, source="form")
    with CaptureQueriesContext(connection) as queries:
        subscribe(email="second@example.com", newsletter=letter, source="form")

    assert not [query for query in queries if "webhooks_webhookendpoint" in query["sql"]]
    assert webhook_work_queued() == 0


def test_an_endpoint_created_after_the_answer_was_cached_gets_the_next_event(
    hook_receiver, shared_cache
):
    receiver = hook_receiver()
    letter = make_newsletter()
    subscribe(email="before@example.com", newsletter=letter, source="form")
    endpoint_create(url=receiver.url)
    subscribe(email="after@example.com", newsletter=letter, source="form")
    run_worker_until_idle()

    assert [json.loads(body)["data"]["email"] for _, body in receiver.requests] == [
        "after@example.com"
    ]


def test_an_endpoint_committed_while_another_process_asked_gets_the_next_event(
    hook_receiver, shared_cache
):
    receiver = hook_receiver()
    answers = []

    def ask_from_another_connection():
        try:
            answers.append(endpoints_active_exist())
        finally:
            connections.close_all()

    with transaction.atomic():
        endpoint_create(url=receiver.url)
        # Elsewhere, before this commits: the database has no endpoint yet, and
        # that answer goes into the shared cache.
        asking = threading.Thread(target=ask_from_another_connection)
        asking.start()
        asking.join()
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    run_worker_until_idle()

    assert answers == [False]
    assert len(receiver.requests) == 1


def test_an_endpoint_created_in_the_subscribes_own_transaction_gets_its_event(
    hook_receiver, shared_cache
):
    receiver = hook_receiver()
    letter = make_newsletter()
    subscribe(email="before@example.com", newsletter=letter, source="form")
    with transaction.atomic():
        endpoint_create(url=receiver.url)
        subscribe(email="jane@example.com", newsletter=letter, source="form")
    run_worker_until_idle()

    assert len(receiver.requests) == 1


def test_a_batch_of_sign_ups_asks_once_whether_endpoints_exist_and_each_gets_its_event(
    hook_receiver, shared_cache, monkeypatch
):
    receiver = hook_receiver()
    endpoint_create(url=receiver.url)
    letter = make_newsletter(opt_in="double")
    addresses = [f"reader{number}@example.com" for number in range(6)]
    for address in addresses:
        subscribe_queue(email=address, newsletter=letter, name="", consent=CONSENT)
    asked = []
    monkeypatch.setattr(
        webhook_receivers, "endpoints_active_exist", lambda: asked.append(1) or True
    )
    run_form_requests()

    assert len(asked) == 1
    run_worker_until_idle()
    events = sorted(json.loads(body)["data"]["email"] for _, body in receiver.requests)
    assert events == addresses


def test_once_the_last_endpoint_is_deleted_no_webhook_work_is_queued(hook_receiver, shared_cache):
    endpoint = endpoint_create(url=hook_receiver().url)
    letter = make_newsletter()
    subscribe(email="first@example.com", newsletter=letter, source="form")
    assert webhook_work_queued() == 1

    endpoint_delete(endpoint=endpoint)
    subscribe(email="second@example.com", newsletter=letter, source="form")
    assert webhook_work_queued() == 1


def test_with_a_per_process_cache_an_endpoint_from_another_process_is_seen_at_once(
    hook_receiver,
):
    # The default cache (locmem) is this process's own: another process's change
    # cannot reach it, so the answer is never kept there.
    receiver = hook_receiver()
    letter = make_newsletter()
    subscribe(email="before@example.com", newsletter=letter, source="form")
    # As another process would: this process hears no signal of it.
    WebhookEndpoint.objects.bulk_create([WebhookEndpoint(url=receiver.url)])
    subscribe(email="after@example.com", newsletter=letter, source="form")
    run_worker_until_idle()

    assert len(receiver.requests) == 1


def test_an_unreachable_cache_loses_no_event(hook_receiver, settings):
    receiver = hook_receiver()
    endpoint_create(url=receiver.url)
    # Nothing listens on port 1: every cache call fails.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    run_worker_until_idle()

    assert len(receiver.requests) == 1


def test_a_target_that_became_private_is_refused_at_delivery(hook_receiver, settings):
    receiver = hook_receiver()
    endpoint_create(url=receiver.url)
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    run_worker_until_idle()

    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert "not public" in attempt.error
    assert attempt.status_code is None


class Resolver:
    """A DNS that answers ``first`` for the next lookup of ``host``, then ``later`` for
    every one after: a zero-TTL name rebinding from a public address to ours."""

    def __init__(self, monkeypatch, host, first, later):
        self.host, self.answers, self.later = host, [first], later
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host != self.host:
                return real(host, port, *args, **kwargs)
            address = self.answers.pop(0) if self.answers else self.later
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def rebind(self, first, later):
        self.answers, self.later = [first], later


def endpoint_rebinding(hook_receiver, settings, monkeypatch, *, host, first, later):
    """A loopback receiver and an endpoint at ``host``, public when created; from then on
    ``host`` resolves to ``first`` once, then to ``later``. Returns the receiver."""
    receiver = hook_receiver()
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    dns = Resolver(monkeypatch, host, "93.184.216.34", "93.184.216.34")
    endpoint_create(url=f"http://{host}:{receiver.server.server_port}/hooks")
    dns.rebind(first, later)
    return receiver


def test_a_host_rebinding_to_loopback_after_the_check_gets_nothing(
    hook_receiver, settings, monkeypatch
):
    receiver = endpoint_rebinding(
        hook_receiver,
        settings,
        monkeypatch,
        host="rebind.example.com",
        first="93.184.216.34",
        later="127.0.0.1",
    )
    # Tests talk only to 127.0.0.1: the vetted public address is recorded, not dialled.
    dialled = []

    def socket_connect(*, addresses, timeout):
        dialled.extend(sockaddr[0] for _, sockaddr in addresses)
        raise ConnectionRefusedError("not dialled in tests")

    monkeypatch.setattr(webhook_connections, "socket_connect", socket_connect)
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    run_worker_until_idle()

    assert receiver.requests == []
    assert set(dialled) == {"93.184.216.34"}
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error
    assert WebhookMessage.objects.get().status != "delivered"


def test_a_host_resolving_to_a_private_address_is_refused_without_naming_it(
    hook_receiver, settings, monkeypatch
):
    receiver = endpoint_rebinding(
        hook_receiver,
        settings,
        monkeypatch,
        host="inside.example.com",
        first="10.20.30.40",
        later="127.0.0.1",
    )
    subscribe(email="jane@example.com", newsletter=make_newsletter(), source="form")
    run_worker_until_idle()

    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.error == "inside.example.com resolves to an address that is not public"


def test_a_pinned_connection_goes_to_the_vetted_address_and_names_the_host(
    hook_receiver, monkeypatch
):
    receiver = hook_receiver()
    port = receiver.server.server_port

    def no_dns(*args, **kwargs):
        raise AssertionError("the host was resolved again")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    opener = opener_for(addresses=[(socket.AF_INET, ("127.0.0.1", port))])
    request = urllib.request.Request(f"http://hooks.example.com:{port}/hooks", data=b"{}")
    with opener.open(request, timeout=5) as response:
        assert response.status == 200

    [(headers, _)] = receiver.requests
    assert headers["Host"] == f"hooks.example.com:{port}"


@pytest.fixture
def hooks_example_tls(tmp_path, monkeypatch):
    """A TLS server context with a self-signed certificate for hooks.example.com, which
    clients in this test trust."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=hooks.example.com"),
            *("-addext", "subjectAltName=DNS:hooks.example.com"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_a_pinned_https_connection_checks_the_certificate_against_the_host(
    hook_receiver, hooks_example_tls
):
    receiver = hook_receiver(tls=hooks_example_tls)
    port = receiver.server.server_port
    opener = opener_for(addresses=[(socket.AF_INET, ("127.0.0.1", port))])

    trusted = urllib.request.Request(f"https://hooks.example.com:{port}/hooks", data=b"{}")
    with opener.open(trusted, timeout=5) as response:
        assert response.status == 200
    impostor = urllib.request.Request(f"https://other.example.com:{port}/hooks", data=b"{}")
    with pytest.raises(urllib.error.URLError) as refused:
        opener.open(impostor, timeout=5)

    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    assert len(receiver.requests) == 1


def postmark(client, payload):
    credentials = base64.b64encode(b"anymail:dev").decode()
    return client.post(
        "/anymail/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )


def bounce(email, kind="HardBounce"):
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."
        if kind == "HardBounce"
        else "smtp;452 4.2.2 Mailbox full",
        "Email": email,
        "From": "editors@example.com",
        "BouncedAt": "2026-11-23T10:00:00Z",
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Issue",
    }


def test_a_hard_bounce_from_the_provider_ends_every_subscription(client, db):
    weekly, daily = make_newsletter(slug="weekly"), make_newsletter(slug="daily")
    for letter in (weekly, daily):
        subscribe(email="gone@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=weekly, subject="Hi", body_markdown="x")
    issue_send_prepared(issue=issue)

    with SignalRecorder(bounce_received) as bounced:
        assert postmark(client, bounce("gone@example.com")).status_code == 200

    assert set(Subscription.objects.values_list("status", flat=True)) == {"bounced"}
    assert Subscription.objects.filter(bounced_at__isnull=False).count() == 2
    assert [call["bounce_type"] for call in bounced.calls] == ["hard", "hard"]
    assert Delivery.objects.get().status == "skipped", "no more mail to it, mid-send included"
    profile = Subscription.objects.first().profile
    assert list(profile.subscriptions.all()) == []


def test_soft_bounces_end_subscriptions_only_after_the_limit(client, settings, db):
    settings.SIGNALPOST_SOFT_BOUNCE_LIMIT = 3
    subscribe(email="full@example.com", newsletter=make_newsletter(), source="admin")
    for expected in ["active", "active", "bounced"]:
        assert postmark(client, bounce("full@example.com", kind="SoftBounce")).status_code == 200
        assert Subscription.objects.get().status == expected


def test_a_complaint_ends_every_subscription(client, db):
    subscribe(email="angry@example.com", newsletter=make_newsletter(), source="admin")
    complaint = {
        **bounce("angry@example.com"),
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
    }
    with SignalRecorder(complaint_received) as complained:
        assert postmark(client, complaint).status_code == 200
    assert Subscription.objects.get().status == "complained"
    assert complained.calls[0]["user_email"] == "angry@example.com"


def test_tracking_webhooks_need_the_shared_secret(client, db):
    subscribe(email="gone@example.com", newsletter=make_newsletter(), source="admin")
    response = client.post(
        "/anymail/postmark/tracking/",
        data=json.dumps(bounce("gone@example.com")),
        content_type="application/json",
    )
    assert response.status_code in (400, 401, 403)
    assert Subscription.objects.get().status == "active"


def test_a_bounce_for_an_unknown_address_changes_nothing(client, db):
    assert postmark(client, bounce("stranger@example.com")).status_code == 200
    assert not Subscription.objects.exists()


def test_an_imported_unsubscribe_and_its_lifting_post_signed_events(hook_receiver):
    receiver = hook_receiver()
    endpoint = endpoint_create(
        url=receiver.url, events=["subscriber.suppressed", "subscriber.suppression_lifted"]
    )
    letter = make_newsletter(slug="weekly")
    suppressions_add(
        entries=[("jane@example.com", "unsubscribed", None), ("sam@example.com", "bounced", None)],
        newsletter=letter,
        source="import:mailchimp",
    )
    pending = subscribe(email="jane@example.com", newsletter=letter, source="form")
    subscription_confirm(subscription=pending)
    run_worker_until_idle()

    events = sorted(
        (json.loads(body) for headers, body in receiver.requests),
        key=lambda event: (event["type"], str(event["data"].get("newsletter"))),
    )
    assert all(verify(endpoint.secret, headers, body) for headers, body in receiver.requests)
    assert [(event["type"], event["data"]) for event in events] == [
        (
            "subscriber.suppressed",
            {
                "emails": ["sam@example.com"],
                "newsletter": None,
                "reason": "bounced",
                "source": "import:mailchimp",
            },
        ),
        (
            "subscriber.suppressed",
            {
                "emails": ["jane@example.com"],
                "newsletter": "weekly",
                "reason": "unsubscribed",
                "source": "import:mailchimp",
            },
        ),
        (
            "subscriber.suppression_lifted",
            {"email": "jane@example.com", "newsletter": "weekly", "status": "active"},
        ),
    ]
