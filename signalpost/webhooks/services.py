"""Webhook endpoints, and the delivery of each event to each of them."""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from signalpost.conf import conf
from signalpost.durable.policy import RetryPolicy
from signalpost.redaction import json_mentions, json_rows_forget, text_redact
from signalpost.webhooks.connections import opener_for
from signalpost.webhooks.events import ERASED_EVENT, EVENTS, PERSONAL_FIELDS
from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, secret_new
from signalpost.webhooks.targets import TargetRefused, target_check

MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10
EXCERPT_LENGTH = 500
# Read beyond the excerpt, so that an address cut at its end is still whole when redacted.
EXCERPT_READ = 2 * EXCERPT_LENGTH
USER_AGENT = "Signalpost-Webhooks/1"


def endpoint_validate(*, url: str, events: Iterable[str]) -> None:
    errors: dict[str, str] = {}
    try:
        URLValidator(schemes=["http", "https"])(url)
        target_check(url)
    except ValidationError:
        errors["url"] = "Enter a valid http or https URL."
    except TargetRefused as error:
        errors["url"] = f"This URL cannot receive webhooks: {error}."
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        errors["events"] = f"Unknown events: {', '.join(unknown)}. Known: {', '.join(EVENTS)}."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def endpoint_create(
    *, url: str, events: Iterable[str] = (), description: str = ""
) -> WebhookEndpoint:
    """Create an active endpoint after checking its URL is allowed; return it."""
    events = list(dict.fromkeys(events))
    endpoint_validate(url=url, events=events)
    description = " ".join(description.replace("\x00", " ").split())[:200]
    return WebhookEndpoint.objects.create(url=url, events=events, description=description)


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """Give ``endpoint`` a new secret (the old one stops signing at once); return it."""
    endpoint.secret = secret_new()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


@transaction.atomic
def messages_create(*, event: str, event_id: str, payload: dict[str, Any]) -> list[WebhookMessage]:
    """Queue ``event`` for every active endpoint that wants it; return the messages.

    Idempotent by ``event_id``: a rerun of the same event queues nothing twice.
    """
    from signalpost.webhooks.tasks import webhook_message_deliver

    body = json.loads(
        json.dumps(
            {"id": event_id, "type": event, "created_at": timezone.now(), "data": payload},
            cls=DjangoJSONEncoder,
        )
    )
    created = []
    for endpoint in WebhookEndpoint.objects.filter(is_active=True):
        if not endpoint.wants(event):
            continue
        message, is_new = WebhookMessage.objects.get_or_create(
            endpoint=endpoint, event_id=event_id, defaults={"event": event, "payload": body}
        )
        if is_new:
            webhook_message_deliver.enqueue(message_id=str(message.pk))
            created.append(message)
    return created


@transaction.atomic
def messages_forget(*, email: str) -> int:
    """Delete every message carrying ``email`` except the erase events; return how many.

    A message listing other addresses too (``subscriber.suppressed``) stays for them,
    without ``email`` (``json_rows_forget``).

    Deleted, not blanked: a pending one must not go out, and a sent one without its
    body no longer records what was sent. Their attempts (response excerpts may echo
    the address) go with them. The erase events stay until delivered or given up
    (``message_outcome_record`` then drops the address). Attempts of the messages
    that stay lose any mention of the address (excerpts are redacted when stored;
    this finds those stored before).
    """
    deleted = json_rows_forget(
        WebhookMessage.objects.filter(json_mentions("payload", text=email)).exclude(
            event=ERASED_EVENT
        ),
        field="payload",
        texts=[email],
    )
    mentioning = WebhookAttempt.objects.filter(
        Q(response_excerpt__icontains=email) | Q(error__icontains=email)
    ).only("pk", "response_excerpt", "error")
    for attempt in mentioning:
        WebhookAttempt.objects.filter(pk=attempt.pk).update(
            response_excerpt=text_redact(attempt.response_excerpt, values=[email]),
            error=text_redact(attempt.error, values=[email]),
        )
    return deleted


def _excerpt(raw: bytes | str, *, message: WebhookMessage) -> str:
    """What is stored of an endpoint's answer: its start, without the person it was about.

    Endpoints may echo the body they received: the address and name it carried are
    taken out (and anything else shaped like an address), before cutting, so that
    a cut cannot leave half an address behind.
    """
    data = message.payload.get("data") or {}
    values = [data.get(key) for key in PERSONAL_FIELDS if isinstance(data.get(key), str)]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text_redact(text, values=values)[:EXCERPT_LENGTH]


PRUNE_CHUNK = 2000


def messages_prune(*, older_than: datetime, dry_run: bool = False) -> int:
    """Delete delivered and given-up messages created before ``older_than``, with their
    attempts; return how many messages (would) go.

    Pending ones stay, however old: they are still being retried. Deleted a chunk per
    transaction, so pruning a large backlog holds no long lock and little memory.
    """
    finished = WebhookMessage.objects.filter(
        created_at__lt=older_than,
        status__in=[WebhookMessage.Status.DELIVERED, WebhookMessage.Status.FAILED],
    )
    if dry_run:
        return finished.count()
    pruned = 0
    while chunk := list(finished.values_list("pk", flat=True)[:PRUNE_CHUNK]):
        # The attempts go by the foreign key's cascade, in one statement per chunk.
        _, deleted = WebhookMessage.objects.filter(pk__in=chunk).delete()
        pruned += deleted.get(WebhookMessage._meta.label, 0)
    return pruned


def _signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, as receivers verify it."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def message_post(*, message: WebhookMessage) -> bool:
    """POST ``message`` once and log the attempt; return whether the endpoint took it."""
    endpoint = message.endpoint
    body = json.dumps(message.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    number = message.attempts + 1
    attempt = WebhookAttempt(message=message, number=number)
    started = time.monotonic()
    try:
        addresses = target_check(endpoint.url)
        request = urllib.request.Request(
            endpoint.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Signalpost-Event": message.event,
                "Signalpost-Delivery": str(message.pk),
                "Signalpost-Signature": _signature_header(
                    secret=endpoint.secret, timestamp=timestamp, body=body
                ),
            },
        )
        opener = opener_for(addresses=addresses)
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            attempt.status_code = response.status
            attempt.response_excerpt = _excerpt(response.read(EXCERPT_READ), message=message)
    except urllib.error.HTTPError as error:
        attempt.status_code = error.code
        attempt.response_excerpt = _excerpt(error.read(EXCERPT_READ), message=message)
    except (TargetRefused, OSError, ValueError) as error:
        attempt.error = _excerpt(str(error), message=message)
    attempt.latency_ms = int((time.monotonic() - started) * 1000)
    attempt.save()
    message.attempts = number
    delivered = attempt.status_code is not None and 200 <= attempt.status_code < 300
    return delivered


def retry_policy() -> RetryPolicy:
    """How a failed delivery is retried: ``SIGNALPOST_WEBHOOK_MAX_ATTEMPTS`` attempts in all,
    10 s after the first, doubling up to an hour, with jitter."""
    return RetryPolicy(max_attempts=conf.WEBHOOK_MAX_ATTEMPTS, backoff_base=10, backoff_max=3600)


@transaction.atomic
def message_outcome_record(*, message: WebhookMessage, delivered: bool) -> None:
    """Record the attempt's outcome; schedule the next one while attempts remain."""
    from signalpost.webhooks.tasks import webhook_message_deliver

    if delivered:
        message.status = WebhookMessage.Status.DELIVERED
        message.delivered_at = timezone.now()
    elif message.attempts >= (policy := retry_policy()).max_attempts:
        message.status = WebhookMessage.Status.FAILED
    else:
        run_after = timezone.now() + timedelta(seconds=policy.delay_after(message.attempts))
        webhook_message_deliver.using(run_after=run_after).enqueue(message_id=str(message.pk))
    update_fields = ["status", "delivered_at", "attempts"]
    if message.event == ERASED_EVENT and message.status != WebhookMessage.Status.PENDING:
        # Nothing sends it again: the address it carried for the endpoint is the
        # last copy held. The attempts stay, as the record that the endpoint was told.
        message.payload = {**message.payload, "data": {}}
        update_fields.append("payload")
    message.save(update_fields=update_fields)


@transaction.atomic
def endpoint_update(
    *, endpoint: WebhookEndpoint, events: Iterable[str], description: str, is_active: bool
) -> WebhookEndpoint:
    """Change what ``endpoint`` receives and whether it is active; return it.

    Its URL does not change: an integrator moving elsewhere creates a new endpoint
    (with its own secret), so messages already signed for one target never go to another.
    """
    events = list(dict.fromkeys(events))
    endpoint_validate(url=endpoint.url, events=events)
    endpoint.events = events
    endpoint.description = " ".join(description.replace("\x00", " ").split())[:200]
    endpoint.is_active = is_active
    endpoint.save(update_fields=["events", "description", "is_active"])
    return endpoint


@transaction.atomic
def message_redeliver(*, message: WebhookMessage) -> bool:
    """Try a given-up message once more (staff fixed the endpoint); return whether it was queued.

    Only failed messages, and never an erase event: a given-up one no longer carries the
    address it was about. A further failure gives it up again.
    """
    from signalpost.webhooks.tasks import webhook_message_deliver

    updated = (
        WebhookMessage.objects.filter(pk=message.pk, status=WebhookMessage.Status.FAILED)
        .exclude(event=ERASED_EVENT)
        .update(status=WebhookMessage.Status.PENDING)
    )
    if updated:
        webhook_message_deliver.enqueue(message_id=str(message.pk))
    return bool(updated)
