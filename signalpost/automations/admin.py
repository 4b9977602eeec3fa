"""Staff pages of automations: write one (settings and steps as rows), preview and
test-send each email step, activate, pause or delete it, and follow its funnel.

Every write is a service call (``automation_create`` / ``automation_update``), so
the one validation of ``automations.validation`` judges what the staff type as it
judges what the API gets; ``forms.py`` turns the rows into the API's JSON and puts
the refusals back on the row they name.
"""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from signalpost.accounts.services import email_normalize
from signalpost.automations.forms import (
    ROWS_MAX,
    AutomationForm,
    StepForm,
    service_errors_show,
    step_forms,
    step_forms_more,
)
from signalpost.automations.models import Automation, Step
from signalpost.automations.selectors import automation_funnel
from signalpost.automations.services import (
    automation_activate,
    automation_create,
    automation_delete,
    automation_pause,
    automation_update,
)
from signalpost.newsletters.models import Subscription
from signalpost.publishing.admin import TestSendForm
from signalpost.publishing.rendering import inbox_preview_text
from signalpost.publishing.selectors import issue_preview_message
from signalpost.publishing.services import issue_send_tests
from signalpost.uploads import takes_fields

_post_only = method_decorator(require_POST)
# The button that shows the form again with more empty step rows, saving nothing.
MORE_ROWS = "_more_rows"
# The fields of a page of ROWS_MAX step rows, its settings and the formset's own.
FIELDS_MAX = ROWS_MAX * (len(StepForm.base_fields) + 2) + 50


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ["name", "newsletter", "status", "trigger", "trigger_value"]
    list_filter = ["status", "trigger", "newsletter"]
    search_fields = ["name"]
    actions = ["activate", "pause"]

    # Writing: one page for adding and editing.

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self._edit_page(request, None)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        automation = self.get_object(request, object_id)
        if automation is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, automation):
            raise PermissionDenied
        return self._edit_page(request, automation)

    def _edit_page(self, request, automation: Automation | None):
        """The settings and the step rows; a POST saves them through the services, or
        shows the page again with everything typed and each refusal where it belongs."""
        editable = (
            self.has_add_permission(request)
            if automation is None
            else self.has_change_permission(request, automation)
        )
        if request.method == "POST" and not editable:
            raise PermissionDenied
        creating = automation is None
        if request.method == "POST" and MORE_ROWS in request.POST:
            form = AutomationForm.as_typed(request.POST, creating=creating)
            rows = step_forms_more(request.POST)
            self.message_user(request, "More empty rows below: nothing is saved until Save.")
        elif request.method == "POST":
            form = AutomationForm(request.POST, creating=creating)
            rows = step_forms(data=request.POST)
            if form.is_valid() and rows.is_valid():
                try:
                    automation = self._save(request, automation, form, rows)
                except ValidationError as error:
                    service_errors_show(error, form=form, rows=rows)
                else:
                    self.message_user(request, f"“{automation.name}” saved.")
                    return HttpResponseRedirect(_change_url(automation))
        else:
            form = AutomationForm(
                creating=creating,
                initial=AutomationForm.initial_of(automation) if automation else None,
            )
            rows = step_forms(steps=_stored_steps(automation) if automation else [])
        if not editable:
            for each in [form, *rows]:
                for field in each.fields.values():
                    field.disabled = True
        return TemplateResponse(
            request,
            "admin/automations/automation/edit.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Change “{automation.name}”" if automation else "Add an automation",
                "automation": automation,
                "form": form,
                "rows": rows,
                "steps": _step_rows(automation, rows),
                "editable": editable,
                "more_rows": MORE_ROWS,
                "funnel": _funnel_table(automation) if automation else "",
                "may_delete": automation is not None
                and self.has_delete_permission(request, automation),
            },
        )

    def _save(self, request, automation, form, rows) -> Automation:
        settings = form.settings()
        if automation is None:
            return automation_create(
                newsletter=form.cleaned_data["newsletter"], steps=rows.steps(), **settings
            )
        return automation_update(automation=automation, steps=rows.steps(), **settings)

    # Status: buttons on the page, actions on the list; each a service call.

    def get_urls(self):
        def view(function, route, name):
            return path(
                route, self.admin_site.admin_view(function), name=f"automations_automation_{name}"
            )

        return [
            view(self.activate_view, "<int:automation_id>/activate/", "activate"),
            view(self.pause_view, "<int:automation_id>/pause/", "pause"),
            view(self.preview_view, "<int:automation_id>/steps/<int:position>/preview/", "preview"),
            view(self.test_view, "<int:automation_id>/steps/<int:position>/test/", "test"),
            *[_many_fields(url) for url in super().get_urls()],
        ]

    def _automation_for(self, request, automation_id, *, change=True) -> Automation:
        """The automation, if the user may change it (or see it: ``change=False``)."""
        automation = get_object_or_404(
            Automation.objects.select_related("newsletter"), pk=automation_id
        )
        allowed = (
            self.has_change_permission(request, automation)
            if change
            else self.has_view_or_change_permission(request, automation)
        )
        if not allowed:
            raise PermissionDenied
        return automation

    @_post_only
    def activate_view(self, request, automation_id):
        automation = self._automation_for(request, automation_id)
        self._each(request, [automation], automation_activate, "activated")
        return HttpResponseRedirect(_change_url(automation))

    @_post_only
    def pause_view(self, request, automation_id):
        automation = self._automation_for(request, automation_id)
        self._each(request, [automation], automation_pause, "paused")
        return HttpResponseRedirect(_change_url(automation))

    @admin.action(
        description="Activate (or resume) the selected automations", permissions=["change"]
    )
    def activate(self, request, queryset):
        self._each(request, queryset, automation_activate, "activated")

    @admin.action(description="Pause the selected automations", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, automation_pause, "paused")

    def _each(self, request, automations, service, done):
        changed = 0
        for automation in automations:
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

    def get_deleted_objects(self, objs, request):
        """What a delete takes with it, counted: listing each of an automation's
        enrollments (100,000 after a big import) would make the confirmation page
        unusable. Its hidden issues stay: they are the record of what was sent."""
        summary = [
            format_html(
                "{}: {} step(s), and the progress of {} person(s) through it",
                automation,
                automation.steps.count(),
                automation.enrollments.count(),
            )
            for automation in objs
        ]
        perms_needed = set() if self.has_delete_permission(request) else {"automation"}
        return summary, {self.opts.verbose_name_plural: len(summary)}, perms_needed, []

    def delete_model(self, request, obj):
        automation_delete(automation=obj)

    def delete_queryset(self, request, queryset):
        for automation in queryset:
            automation_delete(automation=automation)

    # An email step: its preview and a test send, of the step as saved.

    def _email_step(self, request, automation, position) -> Step | None:
        """The saved email step of ``automation`` at ``position``, or None (and a message
        saying why)."""
        step = (
            automation.steps.filter(position=position)
            .select_related("issue", "issue__newsletter", "automation__newsletter")
            .first()
        )
        if step is None or step.kind != Step.Kind.EMAIL or step.issue is None:
            what = "no step" if step is None else f"a “{step.get_kind_display()}” step"
            self.message_user(
                request,
                f"Step {position} is {what}: only a saved email step has a preview "
                "and a test send.",
                messages.ERROR,
            )
            return None
        return step

    def preview_view(self, request, automation_id, position):
        """The step's email exactly as the sending builds it, for the sample reader or for
        the subscriber whose address is given (``?reader=``), in a sandboxed frame."""
        automation = self._automation_for(request, automation_id, change=False)
        step = self._email_step(request, automation, position)
        if step is None:
            return HttpResponseRedirect(_change_url(automation))
        reader_email = request.GET.get("reader", "").strip()
        reader, refusal = _reader(step, reader_email) if reader_email else (None, "")
        issue = step.issue
        message = issue_preview_message(
            issue=issue, subject=issue.subject, body_html=issue.body_html, reader=reader
        )
        return self._step_page(
            request,
            step,
            "preview.html",
            "Preview",
            message=message,
            inbox_text=inbox_preview_text(
                preview_text=issue.preview_text, body_html=issue.body_html
            ),
            reader_email=reader_email[:254],
            reader=reader,
            refusal=refusal,
        )

    def test_view(self, request, automation_id, position):
        """Email the step as a test to any addresses (the staff user's own by default),
        as the issue test does: at once, nothing recorded, suppressed addresses refused."""
        automation = self._automation_for(request, automation_id)
        step = self._email_step(request, automation, position)
        if step is None:
            return HttpResponseRedirect(_change_url(automation))
        form = TestSendForm(request.POST or None, initial={"to_emails": request.user.email or ""})
        if request.method == "POST" and form.is_valid():
            reached, refused = issue_send_tests(
                issue=step.issue, to_emails=form.cleaned_data["to_emails"]
            )
            if reached:
                self.message_user(request, f"Test sent to {', '.join(reached)}.")
            for reason in refused:
                self.message_user(request, reason, messages.ERROR)
            if not refused:
                return HttpResponseRedirect(_change_url(step.automation))
        return self._step_page(request, step, "test.html", "Send a test", form=form)

    def _step_page(self, request, step, template, crumb, **context):
        return TemplateResponse(
            request,
            f"admin/automations/automation/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{crumb}: step {step.position} of “{step.automation.name}”",
                "crumb": crumb,
                "automation": step.automation,
                "step": step,
                "change_url": _change_url(step.automation),
                **context,
            },
        )


def _many_fields(url):
    """The add and change pages post every field of every step row: more than the usual
    limit of form fields (``DATA_UPLOAD_MAX_NUMBER_FIELDS``)."""
    if url.name in {"automations_automation_add", "automations_automation_change"}:
        takes_fields(FIELDS_MAX)(url.callback)
    return url


def _change_url(automation: Automation) -> str:
    return reverse("admin:automations_automation_change", args=[automation.pk])


def _stored_steps(automation: Automation) -> list[dict[str, Any]]:
    return [{"kind": step.kind, "config": step.config} for step in automation.steps.all()]


def _step_rows(automation: Automation | None, rows) -> list[dict[str, Any]]:
    """Each row with its title and, if it shows a saved email step (rows start in the
    saved order), the links to that step's preview and test send."""
    saved, emails = 0, set()
    if automation is not None:
        kinds = dict(automation.steps.values_list("position", "kind"))
        saved = len(kinds)
        emails = {position for position, kind in kinds.items() if kind == Step.Kind.EMAIL}
    shown = []
    for position, row in enumerate(rows):
        links = None
        if automation is not None and position in emails:
            args = [automation.pk, position]
            links = {
                "preview": reverse("admin:automations_automation_preview", args=args),
                "test": reverse("admin:automations_automation_test", args=args),
            }
        title = f"Step {position}" if position < saved else "A new step"
        shown.append({"form": row, "title": title, "links": links})
    return shown


def _reader(step: Step, email: str):
    """``(profile, "")`` of the subscriber of the step's newsletter with ``email``, or
    ``(None, why not)``."""
    try:
        address = email_normalize(email)
    except ValidationError:
        return None, "That is not an email address; the preview is for the sample reader."
    subscription = (
        Subscription.objects.filter(
            newsletter_id=step.automation.newsletter_id, profile__email=address
        )
        .select_related("profile")
        .first()
    )
    if subscription is None:
        return None, (
            f"{step.automation.newsletter.name} has no subscriber with that address; "
            "the preview is for the sample reader."
        )
    return subscription.profile, ""


def _funnel_table(automation: Automation) -> str:
    """The funnel: how many enrolled and where they are, per step what happened."""
    funnel = automation_funnel(automation=automation)
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
    unreadable = (
        ""
        if funnel["not_a_date"] is None
        else format_html(
            " {} subscriber(s) have a {} that is not a date it can read.",
            funnel["not_a_date"],
            automation.trigger_value,
        )
    )
    return format_html(
        "<p>{} enrolled: {} in progress, {} finished, {} exited.{}</p>"
        '<div class="automation-funnel-table"><table><thead><tr>'
        '<th scope="col">Step</th><th scope="col">Kind</th>'
        '<th scope="col">Waiting for it</th><th scope="col">Ran</th>'
        '<th scope="col">Sent</th><th scope="col">Clicked</th></tr></thead>'
        "<tbody>{}</tbody></table></div>",
        funnel["enrolled"],
        funnel["active"],
        funnel["finished"],
        funnel["exited"],
        unreadable,
        rows,
    )
