import contextlib
import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import (
    FileResponse,
    Http404,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from signalpost.newsletters.embedding import embed_snippets
from signalpost.newsletters.formats import FORMATS
from signalpost.newsletters.imports import (
    UPLOAD_MAX_BYTES,
    ImportFileError,
    subscribers_export,
    subscriptions_export,
)
from signalpost.newsletters.mailtemplates import template_check
from signalpost.newsletters.models import (
    EmailTemplate,
    EmailTemplateVersion,
    Newsletter,
    SubscriberImport,
    Subscription,
    Suppression,
    Topic,
)
from signalpost.newsletters.selectors import newsletters_with_active_count
from signalpost.newsletters.services import (
    email_template_delete,
    email_template_revert,
    email_template_save,
    subscriber_import_start,
    subscription_confirm,
    subscription_confirmation_resend,
    unsubscribe,
)
from signalpost.newsletters.suppressions import suppressions_export, suppressions_search
from signalpost.postgresql.estimates import EstimatedCountPaginator
from signalpost.uploads import takes_files

ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class AttributeFilter(admin.ListFilter):
    """Filter by a profile attribute: ``plan`` (has it) or ``plan=pro`` (has that value).

    A text box rather than a list of values: attribute keys and values are whatever
    the API and imports stored, too many to list at a million profiles.
    """

    title = "attribute"
    parameter_name = "attribute"
    template = "admin/signalpost/attribute_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        values = params.pop(self.parameter_name, None)
        value = values[-1] if isinstance(values, list) else values
        self.value = (value or "").strip()[:300]
        self.used_parameters = {self.parameter_name: self.value} if self.value else {}

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def queryset(self, request, queryset):
        if not self.value:
            return queryset
        if any(ord(character) < 32 for character in self.value):
            raise IncorrectLookupParameters("An attribute filter has no control characters.")
        key, has_value, wanted = (part.strip() for part in self.value.partition("="))
        if not ATTRIBUTE_KEY.match(key) or "__" in key:
            raise IncorrectLookupParameters(
                "An attribute is a name (letters, digits, _ . -), optionally =value."
            )
        field = "profile__attributes" if queryset.model is Subscription else "attributes"
        if not has_value:
            return queryset.filter(**{f"{field}__has_key": key})
        # As text on every database: "score=5" matches the number 5 and the string "5".
        text = Cast(KeyTextTransform(key, field), output_field=TextField())
        return queryset.alias(_attribute=text).filter(_attribute=wanted)

    def choices(self, changelist):
        # The other filters and the search stay as they are when this box is submitted.
        others = {
            name: value for name, value in changelist.params.items() if name != self.parameter_name
        }
        yield {"value": self.value, "others": others}


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "opt_in", "is_public", "active_subscribers"]
    list_filter = ["opt_in", "is_public", "topics"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["topics"]

    change_form_template = "admin/newsletters/newsletter/change_form.html"

    def get_queryset(self, request):
        # Counted once for the whole list (cached on large deployments), not per row.
        return newsletters_with_active_count(super().get_queryset(request))

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "description",
                    "topics",
                    "opt_in",
                    "is_public",
                    "sender_name",
                    "sender_email",
                    "reply_to",
                    "language",
                ]
            },
        ),
        (
            "Preference center",
            {
                "fields": ["subscriber_attributes"],
                "description": "Attributes this newsletter's subscribers can set themselves "
                "(segments can then filter on them).",
            },
        ),
        (
            "Subscribe form on other websites",
            {
                "fields": ["embed_allowed", "embed_origins"],
                "description": "The snippets to copy are on the newsletter's "
                "“Embed on a website” page (button at the top, once saved).",
            },
        ),
        (
            "Engagement",
            {
                "fields": [
                    "track_clicks",
                    "track_plain_text_links",
                    "track_opens",
                    "engagement_aggregate_only",
                ],
                "description": "What its issues' emails let the site count (scanners filtered "
                "out). Subscribers see it described in their preference center.",
            },
        ),
    ]

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        embed = self.admin_site.admin_view(self.embed_view)
        return [
            path("<path:object_id>/export.csv", export, name="newsletters_newsletter_export"),
            path("<path:object_id>/embed/", embed, name="newsletters_newsletter_embed"),
            *super().get_urls(),
        ]

    def embed_view(self, request, object_id):
        """The snippets that put the newsletter's subscribe form on another website."""
        newsletter = _object_or_404(Newsletter, object_id)
        if not self.has_view_permission(request, newsletter):
            raise PermissionDenied
        snippets = embed_snippets(newsletter)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": newsletter,
            "title": f"Embed {newsletter.name} on a website",
            "newsletter": newsletter,
            "origins": newsletter.embed_origin_list,
            "snippets": [
                (
                    "form",
                    "Plain form",
                    "Works without JavaScript: the answer is a page on this site.",
                    snippets["form"],
                ),
                (
                    "script",
                    "Form and script",
                    "Submits in place and shows the answer beside the form; without "
                    "JavaScript it works as the plain form. Needs your site's origin listed.",
                    snippets["script"],
                ),
                (
                    "iframe",
                    "Iframe",
                    "The form on a page of this site, inside yours. Shows only on the "
                    "listed origins.",
                    snippets["iframe"],
                ),
            ],
        }
        return TemplateResponse(request, "admin/newsletters/newsletter/embed.html", context)

    def export_view(self, request, object_id):
        """Every subscriber of the newsletter as CSV, streamed (``imports.subscribers_export``)."""
        if not request.user.has_perm("newsletters.view_subscription"):
            raise PermissionDenied
        newsletter = _object_or_404(Newsletter, object_id)
        return _csv_download(
            subscribers_export(newsletter=newsletter),
            f"{newsletter.slug}-subscribers-{timezone.now():%Y%m%d}.csv",
        )

    @admin.display(description="Active subscribers", ordering="active_subscriber_count")
    def active_subscribers(self, newsletter):
        return newsletter.active_subscriber_count


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions change state only through the services, so the signals fire."""

    list_display = ["person", "newsletter", "status", "source", "created_at", "subscribed_at"]
    # The person links to their profile page, where staff act; a subscription's own page
    # (read-only) is one click from there.
    list_display_links = None
    list_filter = [
        "newsletter",
        "status",
        "source",
        ("created_at", admin.DateFieldListFilter),
        ("subscribed_at", admin.DateFieldListFilter),
        AttributeFilter,
    ]
    search_fields = ["profile__email", "profile__name"]
    search_help_text = "Search by address or name."
    list_select_related = ["profile", "newsletter"]
    # A list of millions: no exact count of all of them on every page (estimated
    # past EstimatedCountPaginator's threshold), newest first by the primary key's
    # index rather than by sorting every row's created_at.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ["-pk"]
    # Rendering a row (its links, checkbox, two related names) costs the page more
    # than its query does: 50 a page kept it under 200 ms on a busy machine.
    list_per_page = 50
    readonly_fields = [field.name for field in Subscription._meta.fields]
    actions = ["confirm_selected", "resend_confirmation_selected", "unsubscribe_selected"]
    change_list_template = "admin/newsletters/subscription/change_list.html"

    @admin.display(description="Subscriber", ordering="profile__email")
    def person(self, subscription):
        profile = subscription.profile
        url = reverse("admin:accounts_profile_change", args=[profile.pk])
        name = f" ({profile.name})" if profile.name else ""
        return format_html('<a href="{}">{}</a>{}', url, profile.email, name)

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [
            path("export.csv", export, name="newsletters_subscription_export"),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The subscriptions the list shows (its search and filters), as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:newsletters_subscription_changelist"))
        return _csv_download(
            subscriptions_export(subscriptions=changelist.get_queryset(request)),
            f"subscribers-{timezone.now():%Y%m%d}.csv",
        )

    @admin.action(
        description="Resend the confirmation email to selected pending", permissions=["change"]
    )
    def resend_confirmation_selected(self, request, queryset):
        sent = 0
        for subscription in queryset.filter(status=Subscription.Status.PENDING):
            sent += subscription_confirmation_resend(subscription=subscription)
        self.message_user(
            request, f"Asked {sent} subscriber(s) to confirm again.", messages.SUCCESS
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting the row would skip unsubscribe(): no signal, no activity, no webhook.
        return False

    @admin.action(description="Confirm selected pending subscriptions", permissions=["change"])
    def confirm_selected(self, request, queryset):
        confirmed = 0
        for subscription in queryset.filter(status=Subscription.Status.PENDING):
            subscription_confirm(subscription=subscription)
            confirmed += 1
        self.message_user(request, f"Confirmed {confirmed} subscription(s).", messages.SUCCESS)

    @admin.action(description="Unsubscribe selected", permissions=["change"])
    def unsubscribe_selected(self, request, queryset):
        ended = 0
        for subscription in queryset.select_related("profile", "newsletter"):
            if unsubscribe(
                email=subscription.profile.email,
                newsletter=subscription.newsletter,
                reason=f"unsubscribed by staff ({request.user.get_username()})",
            ):
                ended += 1
        self.message_user(request, f"Unsubscribed {ended} subscription(s).", messages.SUCCESS)


def _object_or_404(model, object_id):
    if not str(object_id).isdigit():
        raise Http404(f"no such {model._meta.verbose_name}")
    return get_object_or_404(model, pk=int(object_id))


def _csv_download(lines, filename):
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ImportForm(forms.Form):
    """The import page's form: the newsletter, the file, and whether to ask for confirmations."""

    newsletter = forms.ModelChoiceField(queryset=Newsletter.objects.order_by("name"))
    file = forms.FileField(
        label="CSV file",
        help_text=(
            f"UTF-8 CSV with an email column (optional: name, consent_at, consent_ip), or an "
            f"export from Mailchimp, Substack, Buttondown or listmonk; at most "
            f"{UPLOAD_MAX_BYTES // (1024 * 1024)} MB; bigger files: manage.py import_subscribers."
        ),
    )
    format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[
            ("", "Recognise it from the columns"),
            *((f.name, f.label) for f in FORMATS.values()),
        ],
        help_text="Unsubscribed, cleaned, bounced and complained people in an export go on the "
        "suppression list: they are never mailed.",
    )
    confirm = forms.BooleanField(
        required=False,
        label="Ask new subscribers to confirm by email (double opt-in)",
        help_text="Unticked, nobody is emailed and imported people are active at once.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; at most {UPLOAD_MAX_BYTES:,} here. "
                "Import bigger files with manage.py import_subscribers."
            )
        return upload


@admin.register(SubscriberImport)
class SubscriberImportAdmin(admin.ModelAdmin):
    """CSV imports from the browser: the upload form, each import's progress, its report."""

    list_display = ["file_name", "newsletter", "status", "progress", "created_by", "created_at"]
    list_filter = ["status", "newsletter"]
    list_select_related = ["newsletter", "created_by"]

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "add/", takes_files(view(self.import_view)), name="newsletters_subscriberimport_add"
            ),
            path(
                "<path:object_id>/rejected.csv",
                view(self.report_view),
                name="newsletters_subscriberimport_report",
            ),
            path(
                "<path:object_id>/change/",
                view(self.progress_view),
                name="newsletters_subscriberimport_change",
            ),
            *super().get_urls(),
        ]

    def has_change_permission(self, request, obj=None):
        return False  # an import is what happened; it is not edited

    @admin.display(description="Progress")
    def progress(self, job):
        return f"{job.percent}% · {job.imported} imported · {job.rejected} rejected" + (
            f" · {job.suppressed} suppressed" if job.suppressed else ""
        )

    def import_view(self, request):
        """Upload a CSV: store it, queue the import, go to its progress page."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {}
        if request.GET.get("newsletter", "").isdigit():
            initial["newsletter"] = request.GET["newsletter"]
        form = ImportForm(request.POST or None, request.FILES or None, initial=initial)
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    job = subscriber_import_start(
                        newsletter=form.cleaned_data["newsletter"],
                        upload=form.cleaned_data["file"],
                        confirm=form.cleaned_data["confirm"],
                        user=request.user,
                        format_name=form.cleaned_data["format"],
                    )
                except ImportFileError as error:
                    form.add_error("file", f"This file cannot be imported: {error}.")
                else:
                    return HttpResponseRedirect(
                        reverse("admin:newsletters_subscriberimport_change", args=[job.pk])
                    )
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import subscribers from CSV",
            "form": form,
        }
        return TemplateResponse(
            request, "admin/newsletters/subscriberimport/import.html", context, status=status
        )

    def progress_view(self, request, object_id):
        """An import's progress bar, counts and rejected-rows report, refreshed in place."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = _object_or_404(SubscriberImport, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Import of {job.file_name}",
            "job": job,
            "finished": job.status in {job.Status.DONE, job.Status.FAILED},
        }
        return TemplateResponse(
            request, "admin/newsletters/subscriberimport/progress.html", context
        )

    def report_view(self, request, object_id):
        """The rejected rows (line, email, reason) as the CSV the import wrote."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = _object_or_404(SubscriberImport, object_id)
        if not job.report:
            raise Http404("this import rejected or skipped no row")
        name = job.file_name.rsplit(".", 1)[0] or "import"
        return FileResponse(
            job.report.open("rb"),
            as_attachment=True,
            filename=f"{name}.rejected.csv",
            content_type="text/csv; charset=utf-8",
        )


class EmailTemplateForm(forms.ModelForm):
    """A template is saved only if it renders with a sample recipient (and shows the
    unsubscribe link where one is due): the reason is shown on the body field."""

    class Meta:
        model = EmailTemplate
        fields = ["newsletter", "name", "body"]
        widgets = {
            "body": forms.Textarea(
                attrs={
                    "rows": 24,
                    "class": "vLargeTextField signalpost-code",
                    "spellcheck": "false",
                }
            )
        }

    def clean(self):
        data = super().clean()
        # Editing, name and newsletter are read-only: they are the instance's.
        name = data.get("name", self.instance.name)
        newsletter = data.get("newsletter", self.instance.newsletter if self.instance.pk else None)
        body = data.get("body")
        if name and body is not None and "body" not in self.errors:
            try:
                template_check(name=name, body=body, newsletter=newsletter)
            except ValidationError as error:
                self.add_error("body", error)
        return data


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    """Email templates edited in the browser, each save a version that can be reverted to."""

    form = EmailTemplateForm
    list_display = ["name", "for_newsletter", "updated_by", "updated_at"]
    list_filter = ["name", "newsletter"]
    list_select_related = ["newsletter", "updated_by"]
    change_form_template = "admin/newsletters/emailtemplate/change_form.html"

    @admin.display(description="Newsletter", ordering="newsletter__name")
    def for_newsletter(self, template):
        return template.newsletter or "Every newsletter"

    def get_readonly_fields(self, request, obj=None):
        # Which template it is stays fixed; a different one is another template.
        return ["newsletter", "name"] if obj is not None else []

    def get_changeform_initial_data(self, request):
        """``?name=welcome.html`` starts from the file of that name."""
        initial = super().get_changeform_initial_data(request)
        name = request.GET.get("name", "")
        if name in EmailTemplate.Name.values:
            with contextlib.suppress(TemplateDoesNotExist):
                initial["body"] = get_template(f"emails/{name}").template.source
        return initial

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="newsletters_emailtemplate_preview",
            ),
            path(
                "<path:object_id>/versions/<int:version_id>/revert/",
                self.admin_site.admin_view(self.revert_view),
                name="newsletters_emailtemplate_revert",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        template = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if template is not None:
            extra["versions"] = template.versions.select_related("created_by")[:50]
            extra["preview"] = _preview(template)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def add_view(self, request, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "names": EmailTemplate.Name.choices}
        return super().add_view(request, form_url, extra_context=extra)

    def save_model(self, request, obj, form, change):
        saved = email_template_save(
            newsletter=obj.newsletter, name=obj.name, body=obj.body, user=request.user
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        email_template_delete(template=obj)

    def preview_view(self, request):
        """Preview a body as typed, without saving it (the form's "Preview" button posts
        here into a new tab): the rendered email for a sample recipient, or why it would
        be refused (400)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        template_id = request.GET.get("template", "")
        if template_id:
            saved = _object_or_404(EmailTemplate, template_id)
            name, newsletter = saved.name, saved.newsletter
        else:
            name = request.POST.get("name", "")
            newsletter_id = request.POST.get("newsletter", "")
            newsletter = _object_or_404(Newsletter, newsletter_id) if newsletter_id else None
        body = request.POST.get("body", "")
        if name not in EmailTemplate.Name.values:
            preview = {"error": "Choose which template this is (Name) to preview it."}
        else:
            preview = _preview(EmailTemplate(name=name, newsletter=newsletter, body=body))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Preview of {name or 'a template'} (not saved)",
            "preview": preview,
        }
        return TemplateResponse(
            request,
            "admin/newsletters/emailtemplate/preview.html",
            context,
            status=400 if "error" in preview else 200,
        )

    def revert_view(self, request, object_id, version_id):
        """Ask once, then make an earlier version active again (as a new version)."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        template = _object_or_404(EmailTemplate, object_id)
        version = get_object_or_404(EmailTemplateVersion, pk=version_id, template=template)
        change_url = reverse("admin:newsletters_emailtemplate_change", args=[template.pk])
        if request.method == "POST":
            try:
                email_template_revert(version=version, user=request.user)
            except ValidationError as error:
                self.message_user(
                    request, f"That version cannot be used now: {' '.join(error.messages)}",
                    messages.ERROR,
                )  # fmt: skip
            else:
                self.message_user(
                    request, f"Reverted to the version of {version.created_at:%Y-%m-%d %H:%M:%S}."
                )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Revert {template.name}?",
            "template": template,
            "version": version,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/newsletters/emailtemplate/revert.html", context)


def _preview(template):
    """The saved template rendered for a sample recipient: ``(html, text)``, one of them."""
    try:
        output = template_check(
            name=template.name, body=template.body, newsletter=template.newsletter
        )
    except ValidationError as error:
        return {"error": " ".join(error.messages)}
    if template.name.endswith(".html"):
        return {"html": output}
    return {"text": output}


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """The suppression list: searchable, filterable, exportable; never edited by hand.

    Only the person lifts a suppression (by confirming a new double opt-in), so staff
    can look, search (a whole address also finds an erased one by its hash) and
    export, but not add, change or delete.
    """

    list_display = ["address", "scope", "reason", "source", "suppressed_at"]
    list_filter = ["reason", "newsletter", "source"]
    search_fields = ["email"]
    search_help_text = "Part of an address; a whole address also finds an erased one."
    empty_value_display = "Every newsletter"
    list_select_related = ["newsletter"]
    date_hierarchy = "suppressed_at"
    actions = None

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "export.csv",
                view(self.export_view),
                name="newsletters_suppression_export",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        return suppressions_search(queryset, search_term), False

    @admin.display(description="Address", ordering="email")
    def address(self, suppression):
        return suppression.email or f"(erased; SHA-256 {suppression.email_hash[:12]}…)"

    @admin.display(description="For", ordering="newsletter__name")
    def scope(self, suppression):
        return suppression.newsletter or "Every newsletter"

    def export_view(self, request):
        """The list as the changelist shows it (search and filters), as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        response = StreamingHttpResponse(
            suppressions_export(suppressions=changelist.get_queryset(request)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
        return response


# The segments' pages live in their own module; importing it registers them.
from signalpost.newsletters import segment_admin  # noqa: E402, F401
