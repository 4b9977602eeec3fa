"""One durable receiver per event: it queues the event for each endpoint that wants it.

Sending the signal records the durable call in the sender's transaction; in
the worker the receiver builds the event's JSON and queues one message per
endpoint, each retried on its own. Nothing is queued while no endpoint exists.
"""

from django.dispatch import receiver

from signalpost.durable.decorators import durable
from signalpost.webhooks.events import EVENTS
from signalpost.webhooks.models import WebhookEndpoint
from signalpost.webhooks.services import messages_create


def endpoints_exist(**kwargs):
    return WebhookEndpoint.objects.filter(is_active=True).exists()


def webhook_receiver(event, build):
    """Return the module-level durable receiver that turns ``event``'s signal into messages."""

    def receive(sender, *, signal, idempotency_key, attempt, **arguments):
        messages_create(event=event, event_id=idempotency_key, payload=build(**arguments))

    receive.__name__ = receive.__qualname__ = "webhooks_" + event.replace(".", "_")
    receive.__module__ = __name__
    return receive


for _event, (_signal, _build) in EVENTS.items():
    _function = webhook_receiver(_event, _build)
    _durable = durable(max_attempts=5, backoff_base=10, only_if=endpoints_exist)(_function)
    globals()[_function.__name__] = _durable
    receiver(_signal, dispatch_uid=f"webhooks.{_event}")(_durable)
