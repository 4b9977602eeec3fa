from django.db import models


class DeadLetter(models.Model):
    """A durable receiver's call that failed on every attempt, kept for staff to replay."""

    class Status(models.TextChoices):
        DEAD = "dead", "Dead (waiting for staff)"
        REPLAYING = "replaying", "Replaying"
        RESOLVED = "resolved", "Resolved by a replay"

    receiver = models.CharField(
        max_length=255,
        help_text="The receiver's id (module.function for calls queued before ids existed).",
    )
    signal_name = models.CharField(max_length=100)
    sender = models.JSONField(null=True, blank=True)
    payload = models.JSONField(help_text="The signal's arguments, as the task carried them.")
    idempotency_key = models.CharField(max_length=64, db_index=True)
    queue_name = models.CharField(max_length=32, default="default")
    attempts = models.PositiveIntegerField()
    error_class = models.CharField(max_length=255)
    last_error = models.TextField(help_text="Traceback of the last attempt.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DEAD)
    failed_at = models.DateTimeField()
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-failed_at"]
        indexes = [models.Index(fields=["status", "-failed_at"])]

    def __str__(self) -> str:
        return f"{self.receiver} ← {self.signal_name} ({self.status})"


class WorkerProcess(models.Model):
    """A running ``db_worker``, alive while its heartbeat is fresher than the lease."""

    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=255)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["started_at"]
        verbose_name_plural = "worker processes"

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname}:{self.pid})"
