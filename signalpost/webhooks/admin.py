from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import ValidationError

from signalpost.webhooks.events import EVENTS
from signalpost.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from signalpost.webhooks.services import (
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
    endpoint_validate,
    message_redeliver,
)


def _has_change_permission(model_admin, request):
    codename = get_permission_codename("change", model_admin.opts)
    return request.user.has_perm(f"{model_admin.opts.app_label}.{codename}")


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(event, event) for event in EVENTS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "events", "is_active"]
        labels = {"url": "URL"}

    def clean(self):
        cleaned_data = super().clean()
        url = self.instance.url if self.instance.pk else cleaned_data.get("url")
        if url:
            try:
                endpoint_validate(url=url, events=cleaned_data.get("events") or [])
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned_data


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints are created, changed and deleted through the services (URL check, secret)."""

    form = WebhookEndpointForm
    list_display = ["url", "description", "events_wanted", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    actions = ["rotate_secret_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["url", "description", "events", "is_active"]
        # The URL is fixed once created: see endpoint_update.
        return ["target_url", "secret_hint", "description", "events", "is_active", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["target_url", "secret_hint", "created_at"] if obj else []

    @admin.display(description="URL")
    def target_url(self, endpoint):
        return endpoint.url

    @admin.display(description="Events")
    def events_wanted(self, endpoint):
        return ", ".join(endpoint.events) or "all"

    @admin.display(description="Secret")
    def secret_hint(self, endpoint):
        return f"{endpoint.secret[:10]}… (rotate it to see a new one)"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            endpoint_update(
                endpoint=obj,
                events=data["events"],
                description=data["description"],
                is_active=data["is_active"],
            )
            return
        endpoint = endpoint_create(
            url=data["url"], events=data["events"], description=data["description"]
        )
        if not data["is_active"]:
            endpoint_update(
                endpoint=endpoint,
                events=endpoint.events,
                description=endpoint.description,
                is_active=False,
            )
        obj.pk = endpoint.pk
        self.message_user(
            request,
            f"Signing secret of {endpoint.url}, shown once: {endpoint.secret}",
            messages.WARNING,
        )

    def delete_model(self, request, obj):
        endpoint_delete(endpoint=obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            endpoint_delete(endpoint=endpoint)

    def has_rotate_permission(self, request):
        return _has_change_permission(self, request)

    @admin.action(
        description="Rotate the signing secret of the selected endpoints", permissions=["rotate"]
    )
    def rotate_secret_selected(self, request, queryset):
        for endpoint in queryset:
            secret = endpoint_secret_rotate(endpoint=endpoint)
            self.message_user(
                request,
                f"New signing secret of {endpoint.url}, shown once: {secret}",
                messages.WARNING,
            )


class WebhookAttemptInline(admin.StackedInline):
    # Stacked, not a table: on a phone a table would scroll sideways in a region a
    # keyboard cannot reach (axe: scrollable-region-focusable).
    model = WebhookAttempt
    fields = ("number", "attempted_at", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        # Attempts are part of their message: whoever may see the message sees them.
        return request.user.has_perm("webhooks.view_webhookmessage")


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    """What was sent to whom, every attempt, and a way to try a given-up message again."""

    list_display = ["created_at", "event", "endpoint", "status", "attempts", "delivered_at"]
    list_filter = ["status", "event", "endpoint"]
    list_select_related = ["endpoint"]
    search_fields = ["event_id"]
    readonly_fields = [
        "id",
        "endpoint",
        "event",
        "event_id",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "payload",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_redeliver_permission(self, request):
        # The form is read-only for everyone; the change permission allows a new attempt.
        return _has_change_permission(self, request)

    @admin.action(
        description="Try the selected given-up messages once more", permissions=["redeliver"]
    )
    def redeliver_selected(self, request, queryset):
        queued = sum(message_redeliver(message=message) for message in queryset)
        skipped = queryset.count() - queued
        self.message_user(request, f"Queued {queued} message(s) for one more attempt.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} message(s) left alone: only given-up messages are tried again, "
                "and never an erase event.",
                messages.WARNING,
            )
