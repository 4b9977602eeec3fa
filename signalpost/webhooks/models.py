import secrets
import uuid

from django.db import models


def secret_new() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class WebhookEndpoint(models.Model):
    """An integrator's URL and the events it wants, signed with its own secret."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, blank=True, help_text="Event names; empty for all.")
    secret = models.CharField(max_length=100, default=secret_new)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.url

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class WebhookMessage(models.Model):
    """One event for one endpoint, retried until delivered or given up."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    event = models.CharField(max_length=50)
    event_id = models.CharField(max_length=64, help_text="The same for every endpoint.")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhooks_message_once_per_endpoint"
            )
        ]

    def __str__(self):
        return f"{self.event} → {self.endpoint} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a message: what came back, how fast."""

    message = models.ForeignKey(
        WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["message", "number"]

    def __str__(self):
        return f"attempt {self.number}: {self.status_code or self.error}"
