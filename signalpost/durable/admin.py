from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from signalpost.durable.models import DeadLetter, WorkerProcess
from signalpost.durable.services import dead_letter_replay


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin[DeadLetter]):
    """Calls that failed on every attempt: read the last error, fix the cause, replay."""

    list_display = ["failed_at", "receiver", "signal_name", "attempts", "error_class", "status"]
    list_filter = ["status", "receiver", "signal_name"]
    search_fields = ["receiver", "idempotency_key", "error_class"]
    readonly_fields = [
        "receiver",
        "signal_name",
        "status",
        "attempts",
        "error_class",
        "last_error_traceback",
        "failed_at",
        "replay_count",
        "replayed_at",
        "resolved_at",
        "idempotency_key",
        "queue_name",
        "sender",
        "payload",
    ]
    exclude = ["last_error"]
    actions = ["replay_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        # The form is read-only for everyone; the change permission is what allows replaying.
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.display(description="Last error")
    def last_error_traceback(self, dead_letter: DeadLetter) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", dead_letter.last_error)

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        replayed = sum(dead_letter_replay(dead_letter=dead_letter) for dead_letter in queryset)
        skipped = queryset.count() - replayed
        self.message_user(
            request,
            f"Queued {replayed} replay(s); skipped {skipped} not in state dead.",
            messages.SUCCESS,
        )


@admin.register(WorkerProcess)
class WorkerProcessAdmin(admin.ModelAdmin[WorkerProcess]):
    list_display = ["worker_id", "hostname", "pid", "queues", "started_at", "heartbeat_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
