from django.tasks import task

from signalpost.webhooks.models import WebhookMessage
from signalpost.webhooks.services import message_outcome_record, message_post


@task
def webhook_message_deliver(*, message_id):
    """POST one webhook message; on failure the next attempt is scheduled with backoff."""
    message = (
        WebhookMessage.objects.select_related("endpoint")
        .filter(pk=message_id, status=WebhookMessage.Status.PENDING)
        .first()
    )
    if message is None:
        return None
    delivered = message_post(message=message)
    message_outcome_record(message=message, delivered=delivered)
    return message.status
