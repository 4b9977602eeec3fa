"""Staff pages of automations: each one's funnel and settings, start and pause.

Automations are written through the API (``/api/v1/automations``), whose
validation every write goes through; here staff see them and switch them on
and off, each action a service call.
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from signalpost.automations.models import Automation
from signalpost.automations.selectors import automation_funnel
from signalpost.automations.services import automation_activate, automation_pause


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ["name", "newsletter", "status", "trigger", "trigger_value"]
    list_filter = ["status", "trigger", "newsletter"]
    search_fields = ["name"]
    actions = ["activate", "pause"]
    readonly_fields = fields = (
        "name",
        "newsletter",
        "status",
        "trigger",
        "trigger_value",
        "trigger_sources",
        "exit_tag",
        "funnel",
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The page is read-only (it has no Save button); the actions change the status.
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Steps and funnel")
    def funnel(self, obj):
        funnel = automation_funnel(automation=obj)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    step["position"],
                    step["kind"],
                    step["at_step"],
                    step["ran"],
                    "—" if step["sent"] is None else step["sent"],
                    "—" if step["clicked"] is None else step["clicked"],
                )
                for step in funnel["steps"]
            ),
        )
        return format_html(
            "<p>{} enrolled: {} in progress, {} finished, {} exited.</p>"
            '<table><thead><tr><th scope="col">Step</th><th scope="col">Kind</th>'
            '<th scope="col">Waiting for it</th><th scope="col">Ran</th>'
            '<th scope="col">Sent</th><th scope="col">Clicked</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            funnel["enrolled"],
            funnel["active"],
            funnel["finished"],
            funnel["exited"],
            rows,
        )

    @admin.action(
        description="Activate (or resume) the selected automations", permissions=["change"]
    )
    def activate(self, request, queryset):
        self._each(request, queryset, automation_activate, "activated")

    @admin.action(description="Pause the selected automations", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, automation_pause, "paused")

    def _each(self, request, queryset, service, done):
        changed = 0
        for automation in queryset:
            try:
                service(automation=automation)
            except ValidationError as error:
                self.message_user(
                    request, f"{automation.name}: {' '.join(error.messages)}", messages.ERROR
                )
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{changed} automation(s) {done}.")
