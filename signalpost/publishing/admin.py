from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from signalpost.engagement.admin_views import issue_links_csv, issue_report_page
from signalpost.newsletters.models import Segment
from signalpost.postgresql.estimates import EstimatedCountPaginator
from signalpost.publishing.models import PREVIEW_TEXT_MAX_LENGTH, Delivery, Issue
from signalpost.publishing.rendering import inbox_preview_text
from signalpost.publishing.selectors import (
    issue_preview_message,
    issue_progress,
    issue_recipients_count,
    issues_progress,
)
from signalpost.publishing.services import (
    EDITABLE,
    KEEP,
    TEST_RECIPIENTS_MAX,
    SendStateRefused,
    issue_cancel,
    issue_create,
    issue_image_add,
    issue_pause,
    issue_render,
    issue_render_preview,
    issue_resume,
    issue_schedule,
    issue_segment_set,
    issue_send,
    issue_send_test,
    issue_send_tests,
    issue_unschedule,
    issue_update,
    issue_validate,
    test_recipients_parse,
)
from signalpost.uploads import takes_files

# Issues whose send can be followed, paused, resumed or cancelled from their page.
UNDER_WAY = {Issue.Status.SENDING, Issue.Status.PAUSED}
STARTED = {Issue.Status.SENDING, Issue.Status.PAUSED, Issue.Status.SENT, Issue.Status.CANCELLED}
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class ScheduleForm(forms.Form):
    scheduled_at = forms.DateTimeField(
        label="Send at",
        help_text="Your local time, as the admin shows times.",
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )

    def clean_scheduled_at(self):
        at = self.cleaned_data["scheduled_at"]
        if at <= timezone.now():
            raise ValidationError("A scheduled time must be in the future.")
        return at


class WriteForm(forms.Form):
    """The writing page's subject and body; ``clean`` renders the body (``body_html``),
    for the live preview (``preview``) by the parts that changed."""

    subject = forms.CharField(max_length=200)
    preview_text = forms.CharField(
        required=False,
        max_length=PREVIEW_TEXT_MAX_LENGTH,
        help_text=Issue._meta.get_field("preview_text").help_text,
        widget=forms.TextInput(attrs={"aria-describedby": "preview_text-help"}),
    )
    body_markdown = forms.CharField(
        label="Body (Markdown)",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true"}),
    )

    def __init__(self, *args, preview=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.render = issue_render_preview if preview else issue_render

    def clean(self):
        cleaned_data = super().clean()
        body = cleaned_data.get("body_markdown", "")
        try:
            issue_validate(
                subject=cleaned_data.get("subject", ""),
                body_markdown=body,
                preview_text=cleaned_data.get("preview_text", ""),
            )
            cleaned_data["body_html"] = self.render(body_markdown=body)
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                if field in self.fields and field not in self.errors:
                    self.add_error(field, field_errors)
        return cleaned_data


class ImageForm(forms.Form):
    image = forms.FileField(
        label="Add an image",
        required=False,
        help_text="JPEG, PNG, GIF or WebP, at most 5 MB; made at most 1,200 px wide. "
        "It goes in as Markdown where the cursor is (at the end without JavaScript).",
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/jpeg,image/png,image/gif,image/webp"}
        ),
    )
    alt = forms.CharField(
        label="Image description",
        required=False,
        max_length=200,
        help_text="What the image shows, for readers who cannot see it.",
    )


def _image_markdown(*, url, alt):
    """The Markdown of an image, its description kept from closing the brackets."""
    described = " ".join(alt.replace("[", "(").replace("]", ")").split()) or "image"
    return f"![{described}]({url})"


class TestSendForm(forms.Form):
    to_emails = forms.CharField(
        label="Send a test to",
        help_text=f"Up to {TEST_RECIPIENTS_MAX} addresses, separated by commas or lines.",
        max_length=TEST_RECIPIENTS_MAX * 260,
        error_messages={"required": "Enter at least one email address."},
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "email"}),
    )

    def clean_to_emails(self):
        try:
            return test_recipients_parse(raw=self.cleaned_data["to_emails"])
        except ValidationError as error:
            raise ValidationError(error.message_dict["to_emails"]) from error


def _post_only(view):
    """``require_POST`` for a ModelAdmin method."""
    from django.utils.decorators import method_decorator

    return method_decorator(require_POST)(view)


class IssueForm(forms.ModelForm):
    class Meta:
        model = Issue
        fields = [
            "newsletter",
            "segment",
            "subject",
            "preview_text",
            "body_markdown",
            "scheduled_at",
        ]
        widgets = {"body_markdown": forms.Textarea(attrs={"rows": 24, "class": "vLargeTextField"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "segment" in self.fields:
            segments = Segment.objects.select_related("newsletter")
            if self.instance.pk:
                segments = segments.filter(newsletter_id=self.instance.newsletter_id)
            self.fields["segment"].queryset = segments
            self.fields["segment"].empty_label = "Every active subscriber"

    def clean(self):
        """Refuse here what the services would refuse, so the author gets their text back."""
        cleaned_data = super().clean()
        try:
            issue_validate(
                subject=cleaned_data.get("subject", ""),
                body_markdown=cleaned_data.get("body_markdown", ""),
                scheduled_at=self.new_scheduled_at(),
                preview_text=cleaned_data.get("preview_text", ""),
            )
        except ValidationError as error:
            self.add_service_errors(error)
        segment = cleaned_data.get("segment")
        newsletter = cleaned_data.get("newsletter") or self.instance_newsletter()
        if segment is not None and newsletter is not None and segment.newsletter != newsletter:
            self.add_error("segment", "Choose a segment of the issue's newsletter.")
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

    def instance_newsletter(self):
        return self.instance.newsletter if self.instance.newsletter_id else None

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
    readonly_fields = ["status", "slug", "preview", "recipients"]
    # Sending is a button on the issue's page that states the recipients and asks once
    # (send_view), never a bulk action that "select all" would turn on every draft.
    actions = ["send_test_to_me", "unschedule"]
    change_form_template = "admin/publishing/issue/change_form.html"

    def get_queryset(self, request):
        # An automation's email steps are edited with their automation, not here.
        return super().get_queryset(request).filter(is_automated=False)

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
                    preview_text=data["preview_text"],
                )
            else:
                issue = issue_create(
                    newsletter=data["newsletter"],
                    subject=data["subject"],
                    body_markdown=data["body_markdown"],
                    created_by=request.user,
                    scheduled_at=data["scheduled_at"],
                    preview_text=data["preview_text"],
                )
            if "segment" in form.changed_data or not change:
                issue = issue_segment_set(issue=issue, segment=data.get("segment"))
        except ValidationError as error:
            # The issue started sending after the form was shown, or (rarely) rendering the
            # body again took longer this time than when the form was validated.
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
            return
        obj.pk = issue.pk
        obj.refresh_from_db()

    @admin.display(description="Preview")
    def preview(self, issue):
        """The email as a reader gets it (a sample reader), in a sandboxed frame."""
        if not issue.pk:
            return "Save the draft, then write it with its preview beside it."
        message = issue_preview_message(
            issue=issue, subject=issue.subject, body_html=issue.body_html
        )
        return format_html(
            '<iframe class="issue-preview-frame" title="The email as a reader sees it" '
            'sandbox="" srcdoc="{}"></iframe>',
            message.html,
        )

    @admin.display(description="Recipients")
    def recipients(self, issue):
        if not issue.pk:
            return "—"
        count = issue_recipients_count(issue=issue)
        if issue.status in EDITABLE:
            return f"{count} active subscribers now"
        return f"{count} when the send started"

    def get_changelist(self, request, **kwargs):
        return _IssueChangeList

    @admin.display(description="Progress")
    def progress_bar(self, issue):
        progress = getattr(issue, "progress", None)
        if progress is None or issue.status not in STARTED:
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
        def view(function, name):
            wrapped = self.admin_site.admin_view(function)
            if name in {"write", "image"}:
                wrapped = takes_files(wrapped)  # an image uploaded into the body
            return path(f"<int:issue_id>/{name}/", wrapped, name=f"publishing_issue_{name}")

        return [
            view(self.progress_view, "progress"),
            view(self.send_view, "send"),
            view(self.test_view, "test"),
            view(self.pause_view, "pause"),
            view(self.resume_view, "resume"),
            view(self.cancel_view, "cancel"),
            view(self.write_view, "write"),
            view(self.preview_view, "preview"),
            view(self.image_view, "image"),
            view(issue_report_page, "report"),
            path(
                "<int:issue_id>/report/links.csv",
                self.admin_site.admin_view(issue_links_csv),
                name="publishing_issue_report_links_csv",
            ),
            *super().get_urls(),
        ]

    def _issue_for_sending(self, request, issue_id):
        """The issue, if the user may send it; 404 or 403 otherwise."""
        issue = get_object_or_404(
            Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
        )
        if not (self.has_view_permission(request, issue) and self.has_send_permission(request)):
            raise PermissionDenied
        return issue

    def _page(self, request, issue, template, title, **context):
        return TemplateResponse(
            request,
            f"admin/publishing/issue/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "issue": issue,
                "change_url": reverse("admin:publishing_issue_change", args=[issue.pk]),
                **context,
            },
        )

    def _back(self, issue):
        return HttpResponseRedirect(reverse("admin:publishing_issue_change", args=[issue.pk]))

    def _issue_for_writing(self, request, issue_id):
        issue = get_object_or_404(
            Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
        )
        if not self.has_change_permission(request, issue):
            raise PermissionDenied
        return issue

    def write_view(self, request, issue_id):
        """Editor and preview side by side. The script previews as you type (preview_view);
        without it, Save shows the saved issue's preview."""
        issue = self._issue_for_writing(request, issue_id)
        form = WriteForm(
            request.POST or None,
            initial={
                "subject": issue.subject,
                "preview_text": issue.preview_text,
                "body_markdown": issue.body_markdown,
            },
        )
        image_form = ImageForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and image_form.is_valid() and image_form.cleaned_data["image"]:
            try:
                url = issue_image_add(issue=issue, upload=image_form.cleaned_data["image"])
            except ValidationError as error:
                image_form.add_error("image", error.message_dict["image"])
            else:
                data = request.POST.copy()
                markdown = _image_markdown(url=url, alt=image_form.cleaned_data["alt"])
                data["body_markdown"] = f"{data.get('body_markdown', '').rstrip()}\n\n{markdown}\n"
                form = WriteForm(data)
        if request.method == "POST" and form.is_valid() and not image_form.errors:
            try:
                issue = issue_update(
                    issue=issue,
                    subject=form.cleaned_data["subject"],
                    body_markdown=form.cleaned_data["body_markdown"],
                    preview_text=form.cleaned_data["preview_text"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, "Saved.")
                return HttpResponseRedirect(request.path)
        preview = issue_preview_message(
            issue=issue, subject=issue.subject, body_html=issue.body_html
        )
        return self._page(
            request,
            issue,
            "write.html",
            f"Write “{issue.subject}”",
            form=form,
            image_form=image_form,
            image_url=reverse("admin:publishing_issue_image", args=[issue.pk]),
            preview=preview,
            preview_text=inbox_preview_text(
                preview_text=issue.preview_text, body_html=issue.body_html
            ),
            preview_url=reverse("admin:publishing_issue_preview", args=[issue.pk]),
            may_send=self.has_send_permission(request),
        )

    @_post_only
    def preview_view(self, request, issue_id):
        """JSON for the writing page: the email as the sample reader gets it, or the errors
        by field. Nothing is saved."""
        issue = self._issue_for_writing(request, issue_id)
        form = WriteForm(request.POST, preview=True)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        data = form.cleaned_data
        message = issue_preview_message(
            issue=issue,
            subject=data["subject"],
            body_html=data["body_html"],
            preview_text=data["preview_text"],
        )
        return JsonResponse(
            {
                "subject": message.subject,
                "preview_text": inbox_preview_text(
                    preview_text=data["preview_text"], body_html=data["body_html"]
                ),
                "html": message.html,
                "errors": {},
            }
        )

    @_post_only
    def image_view(self, request, issue_id):
        """JSON for the writing page's script: store the image, answer its Markdown."""
        issue = self._issue_for_writing(request, issue_id)
        form = ImageForm(request.POST, request.FILES)
        if not form.is_valid() or not form.cleaned_data["image"]:
            errors = form.errors.get_json_data() or {
                "image": [{"message": "Choose an image to upload.", "code": "required"}]
            }
            return JsonResponse({"errors": errors}, status=400)
        try:
            url = issue_image_add(issue=issue, upload=form.cleaned_data["image"])
        except ValidationError as error:
            errors = {"image": [{"message": m, "code": "invalid"} for m in error.messages]}
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse(
            {"url": url, "markdown": _image_markdown(url=url, alt=form.cleaned_data["alt"])}
        )

    def send_view(self, request, issue_id):
        """Send now or schedule, after one confirmation that states the newsletter, the
        subject and the exact number of recipients."""
        issue = self._issue_for_sending(request, issue_id)
        if issue.status not in EDITABLE:
            self.message_user(request, f"This issue is {issue.status} already.", messages.WARNING)
            return self._back(issue)
        schedule_form = ScheduleForm(
            initial={"scheduled_at": issue.scheduled_at} if issue.scheduled_at else None
        )
        if request.method == "POST":
            if "schedule" in request.POST:
                schedule_form = ScheduleForm(request.POST)
                if schedule_form.is_valid():
                    at = schedule_form.cleaned_data["scheduled_at"]
                    try:
                        issue_schedule(issue=issue, at=at)
                    except ValidationError as error:
                        schedule_form.add_error(None, error.messages[0])
                    else:
                        local = timezone.localtime(at)
                        self.message_user(request, f"Scheduled for {local:%Y-%m-%d %H:%M %Z}.")
                        return self._back(issue)
            else:
                if issue_send(issue=issue):
                    self.message_user(
                        request,
                        "Sending to the subscribers active now: the progress below counts "
                        "them while their deliveries are prepared.",
                    )
                else:
                    issue.refresh_from_db()
                    self.message_user(
                        request, f"This issue is {issue.status} already.", messages.WARNING
                    )
                return self._back(issue)
        return self._page(
            request,
            issue,
            "send.html",
            f"Send “{issue.subject}”",
            recipients=issue_recipients_count(issue=issue),
            schedule_form=schedule_form,
        )

    def test_view(self, request, issue_id):
        """Email the issue as a test to any addresses (each checked as a subscriber's is)."""
        issue = self._issue_for_sending(request, issue_id)
        form = TestSendForm(request.POST or None, initial={"to_emails": request.user.email or ""})
        if request.method == "POST" and form.is_valid():
            reached, refused = issue_send_tests(
                issue=issue, to_emails=form.cleaned_data["to_emails"]
            )
            if reached:
                self.message_user(request, f"Test sent to {', '.join(reached)}.")
            for reason in refused:
                self.message_user(request, reason, messages.ERROR)
            if not refused:
                return self._back(issue)
        return self._page(
            request, issue, "test.html", f"Send a test of “{issue.subject}”", form=form
        )

    def _control(self, request, issue_id, action, done):
        issue = self._issue_for_sending(request, issue_id)
        try:
            result = action(issue=issue)
        except SendStateRefused as refused:
            self.message_user(request, refused.message_dict["status"][0], messages.ERROR)
        else:
            self.message_user(request, done(result))
        return self._back(issue)

    @_post_only
    def pause_view(self, request, issue_id):
        return self._control(
            request,
            issue_id,
            issue_pause,
            lambda paused: (
                "Paused: no more messages leave until you resume."
                if paused
                else "The send was paused already."
            ),
        )

    @_post_only
    def resume_view(self, request, issue_id):
        return self._control(request, issue_id, issue_resume, lambda _: "Resumed where it stopped.")

    def cancel_view(self, request, issue_id):
        """Cancel a running or paused send, after one confirmation."""
        issue = self._issue_for_sending(request, issue_id)
        if request.method == "POST":
            return self._control(
                request,
                issue_id,
                issue_cancel,
                lambda cancelled: f"Cancelled: {cancelled} messages will not be sent.",
            )
        if issue.status not in UNDER_WAY:
            self.message_user(request, f"A {issue.status} issue has no send to cancel.")
            return self._back(issue)
        return self._page(
            request,
            issue,
            "cancel.html",
            f"Cancel the send of “{issue.subject}”",
            progress=issue_progress(issue=issue),
        )

    def progress_view(self, request, issue_id):
        """JSON the change page polls to move its progress bar without a reload."""
        issue = get_object_or_404(Issue, pk=issue_id)
        if not self.has_view_permission(request, issue):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(issue_progress(issue=issue))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        issue = self.get_object(request, object_id)
        if issue is not None:
            if issue.status in STARTED:
                extra_context["progress"] = issue_progress(issue=issue)
                extra_context["progress_url"] = reverse(
                    "admin:publishing_issue_progress", args=[issue.pk]
                )
            extra_context["may_send"] = self.has_send_permission(request)
            extra_context["under_way"] = issue.status in UNDER_WAY
            extra_context["editable"] = issue.status in EDITABLE
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
