"""Old webhook messages are pruned by a command, so the table does not grow for ever."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from signalpost.webhooks import services
from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db


def message(endpoint, *, status, age_days, event_id):
    created = WebhookMessage.objects.create(
        endpoint=endpoint,
        event="subscriber.subscribed",
        event_id=event_id,
        payload={},
        status=status,
    )
    WebhookAttempt.objects.create(message=created, number=1, status_code=200)
    WebhookMessage.objects.filter(pk=created.pk).update(
        created_at=timezone.now() - timedelta(days=age_days)
    )
    return created


@pytest.fixture
def messages():
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/in")
    return {
        "old delivered": message(endpoint, status="delivered", age_days=40, event_id="1"),
        "old failed": message(endpoint, status="failed", age_days=40, event_id="2"),
        "old pending": message(endpoint, status="pending", age_days=40, event_id="3"),
        "new delivered": message(endpoint, status="delivered", age_days=5, event_id="4"),
    }


def prune(*arguments):
    out = StringIO()
    call_command("prune_webhook_messages", *arguments, stdout=out)
    return out.getvalue()


def test_finished_messages_older_than_the_age_go_with_their_attempts(messages):
    assert "Deleted 2 webhook messages" in prune()
    kept = set(WebhookMessage.objects.values_list("event_id", flat=True))
    assert kept == {"3", "4"}  # still retrying; too recent
    assert WebhookAttempt.objects.count() == 2


def test_a_dry_run_counts_and_deletes_nothing(messages):
    assert "Would delete 2 webhook messages" in prune("--dry-run")
    assert WebhookMessage.objects.count() == 4


def test_the_age_is_chosen(messages):
    prune("--min-age-days", "1")
    assert list(WebhookMessage.objects.values_list("event_id", flat=True)) == ["3"]


def test_a_backlog_is_deleted_a_chunk_at_a_time(messages, monkeypatch):
    monkeypatch.setattr(services, "PRUNE_CHUNK", 1)
    assert "Deleted 2 webhook messages" in prune()
    assert WebhookMessage.objects.count() == 2


@pytest.mark.parametrize("bad", ["0", "-3", "ten", "1e3", "", "36501", "9" * 40])
def test_a_bad_age_is_refused_and_nothing_is_deleted(messages, bad):
    with pytest.raises(CommandError, match="--min-age-days"):
        prune("--min-age-days", bad)
    assert WebhookMessage.objects.count() == 4
