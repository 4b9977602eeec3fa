from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from signalpost.postgresql.estimates import EstimatedCountPaginator
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.selectors import (
    issue_progress,
    issues_progress,
)
from signalpost.publishing.services import (
    EDITABLE,
    KEEP,
    issue_create,
    issue_render,
    issue_schedule,
    issue_send,
    issue_send_test,
    issue_unschedule,
    issue_update,
    issue_validate,
)


class IssueForm(forms.ModelForm):
    class Meta:
        model = Issue
        fields = ["newsletter", "subject", "body_markdown", "scheduled_at"]
        widgets = {"body_markdown": forms.Textarea(attrs={"rows": 24, "class": "vLargeTextField"})}

    def clean(self):
        """Refuse here what the services would refuse, so the author gets their text back."""
        cleaned_data = super().clean()
        try:
            issue_validate(
                subject=cleaned_data.get("subject", ""),
                body_markdown=cleaned_data.get("body_markdown", ""),
                scheduled_at=self.new_scheduled_at(),
            )
        except ValidationError as error:
            self.add_service_errors(error)
        if "body_markdown" in cleaned_data and "body_markdown" not in self.errors:
            try:
                # Saving renders it again through the service, which remembers this render.
                issue_render(body_markdown=cleaned_data["body_markdown"])
            except ValidationError as error:
                self.add_service_errors(error)
        return cleaned_data

    def add_service_errors(self, error):
        for field, field_errors in error.message_dict.items():
            # A field the form already refused keeps only its own error.
            if field in self.cleaned_data:
                self.add_error(field, field_errors)

    def new_scheduled_at(self):
        """The scheduled time typed in, if it is new; a time kept from before may have passed."""
        if "scheduled_at" not in self.changed_data:
            return None
        return self.cleaned_data.get("scheduled_at")


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    """Write in Markdown, preview, email yourself a test, send now or schedule."""

    form = IssueForm
    list_display = ["subject", "newsletter", "status", "scheduled_at", "sent_at", "progress_bar"]
    list_filter = ["status", "newsletter"]
    search_fields = ["subject"]
    readonly_fields = ["status", "slug", "preview", "recipient_count"]
    actions = ["send_test_to_me", "send_now", "schedule", "unschedule"]
    change_form_template = "admin/publishing/issue/change_form.html"

    def has_change_permission(self, request, obj=None):
        # A sending or sent issue is shown read-only, so it has no Save button to press.
        if obj is not None and obj.status not in EDITABLE:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [*self.readonly_fields, "newsletter"]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Deleting a sending or sent issue would take its deliveries with it, from under the
        # batch tasks still sending them and from the record of what was sent. The bulk
        # action asks this for each selected issue and refuses if any is not a draft.
        if obj is not None and obj.status != Issue.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        """Saving goes through the services, which render the Markdown (IssueForm validated it)."""
        data = form.cleaned_data
        # Cleared, the time is None, and a scheduled issue goes back to draft.
        scheduled_at = data["scheduled_at"] if "scheduled_at" in form.changed_data else KEEP
        try:
            if change:
                issue = issue_update(
                    issue=obj,
                    subject=data["subject"],
                    body_markdown=data["body_markdown"],
                    scheduled_at=scheduled_at,
                )
            else:
                issue = issue_create(
                    newsletter=data["newsletter"],
                    subject=data["subject"],
                    body_markdown=data["body_markdown"],
                    created_by=request.user,
                    scheduled_at=data["scheduled_at"],
                )
        except ValidationError as error:
            # The issue started sending after the form was shown, or (rarely) rendering the
            # body again took longer this time than when the form was validated.
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
            return
        obj.pk = issue.pk
        obj.refresh_from_db()

    @admin.display(description="Preview")
    def preview(self, issue):
        if not issue.pk:
            return "Save the draft to see its preview."
        return format_html(
            '<div class="issue-preview" style="border:1px solid #ccc;padding:1em;max-width:48em">'
            "{}</div>",
            mark_safe(issue.body_html),  # sanitised with nh3 when saved
        )

    def get_changelist(self, request, **kwargs):
        return _IssueChangeList

    @admin.display(description="Progress")
    def progress_bar(self, issue):
        progress = getattr(issue, "progress", None)
        if progress is None:
            return "—"
        return format_html(
            '<progress max="100" value="{}" style="width:10em"></progress> '
            "{}% · {} sent · {} failed",
            progress["percent"],
            progress["percent"],
            progress["sent"],
            progress["failed"],
        )

    def get_urls(self):
        return [
            path(
                "<int:issue_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="publishing_issue_progress",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, issue_id):
        """JSON the change page polls to move its progress bar without a reload."""
        issue = get_object_or_404(Issue, pk=issue_id)
        if not self.has_view_permission(request, issue):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(issue_progress(issue=issue))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        issue = self.get_object(request, object_id)
        if issue is not None and issue.status in {Issue.Status.SENDING, Issue.Status.SENT}:
            extra_context["progress"] = issue_progress(issue=issue)
            extra_context["progress_url"] = reverse(
                "admin:publishing_issue_progress", args=[issue.pk]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    # A test reaches a real inbox and shows the issue before it is sent: sending anything
    # needs the send permission, whoever it goes to.
    @admin.action(
        description="Send a test email of the selected issues to me", permissions=["send"]
    )
    def send_test_to_me(self, request, queryset):
        if not request.user.email:
            self.message_user(request, "Your user has no email address.", messages.ERROR)
            return
        for issue in queryset.select_related("newsletter"):
            try:
                issue_send_test(issue=issue, to_email=request.user.email)
            except Exception as error:
                self.message_user(request, f"{issue}: test not sent: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{issue}: test sent to {request.user.email}.")

    def has_send_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.send_issue")

    @admin.action(description="Send the selected issues now", permissions=["send"])
    def send_now(self, request, queryset):
        for issue in queryset:
            if issue_send(issue=issue):
                self.message_user(
                    request, f"{issue}: sending to the subscribers active now (preparing)."
                )
            else:
                self.message_user(request, f"{issue} is already {issue.status}.", messages.WARNING)

    @admin.action(
        description="Schedule the selected issues at their scheduled time", permissions=["send"]
    )
    def schedule(self, request, queryset):
        for issue in queryset:
            if issue.scheduled_at is None or issue.scheduled_at <= timezone.now():
                self.message_user(
                    request, f"{issue}: set a scheduled time in the future first.", messages.ERROR
                )
                continue
            try:
                issue_schedule(issue=issue, at=issue.scheduled_at)
            except ValidationError as error:
                self.message_user(request, f"{issue}: {error.messages[0]}", messages.ERROR)
            else:
                self.message_user(request, f"{issue}: scheduled for {issue.scheduled_at:%c}.")

    @admin.action(
        description="Turn the selected scheduled issues back into drafts", permissions=["change"]
    )
    def unschedule(self, request, queryset):
        count = sum(issue_unschedule(issue=issue) for issue in queryset)
        self.message_user(request, f"Unscheduled {count} issue(s).")


class _IssueChangeList(ChangeList):
    """Gives each issue of the page its ``progress`` (``issues_progress``): one query for
    the page, none for sent issues counted lately; counting each sent issue's million
    deliveries on every load took ~900 ms (bench/staff_pages.py)."""

    def get_results(self, request):
        super().get_results(request)
        progress = issues_progress(self.result_list)
        for issue in self.result_list:
            issue.progress = progress.get(issue.pk)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["email", "issue", "status", "attempts", "sent_at"]
    list_filter = ["status", "issue__newsletter"]
    search_fields = ["email", "message_id"]
    list_select_related = ["issue", "issue__newsletter"]
    # A million deliveries per issue to a list of millions: no exact count of all.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    raw_id_fields = ["issue", "profile"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
