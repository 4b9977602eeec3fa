from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models.functions import Lower
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from signalpost.accounts.models import Profile, Tag
from signalpost.accounts.services import (
    profile_attributes_check,
    profile_attributes_set,
    profile_tags_set,
    tags_parse,
)
from signalpost.activity.selectors import activities_for_profile
from signalpost.automations.selectors import enrollments_of_profile
from signalpost.newsletters.admin import AttributeFilter
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscription_confirmation_resend, unsubscribe
from signalpost.postgresql.estimates import EstimatedCountPaginator
from signalpost.privacy.services import profile_erase

# The profile page shows this many of a person's latest events (the trail is append-only).
ACTIVITY_SHOWN = 200


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "profile"
    extra = 0
    can_delete = False
    fields = ("newsletter", "status", "source", "subscribed_at", "unsubscribed_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class ProfileForm(forms.ModelForm):
    tag_names = forms.CharField(
        label="Tags",
        required=False,
        max_length=6000,
        help_text="Separated by commas, as in vip, beta. Stored in lower case.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            names = sorted(self.instance.tags.values_list("name", flat=True))
            self.initial["tag_names"] = ", ".join(names)

    def clean_tag_names(self):
        try:
            return tags_parse(self.cleaned_data["tag_names"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["tags"]) from exc

    def clean_attributes(self):
        """The API's rules: a flat object of values every database stores (no NaN)."""
        attributes = self.cleaned_data["attributes"]
        try:
            profile_attributes_check(attributes)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["attributes"]) from exc
        return attributes


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ["email", "name", "user", "created_at"]
    list_filter = [("created_at", admin.DateFieldListFilter), AttributeFilter, "tags"]
    search_fields = ["email", "name"]
    # A list of millions: no exact count of all of them on every page; sorted by
    # LOWER(email), whose unique index gives the first page without a sort; the
    # search's icontains has trigram indexes on PostgreSQL (migration 0005).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = [Lower("email")]
    readonly_fields = ["subscriptions", "created_at", "updated_at"]
    raw_id_fields = ["user"]
    inlines = [SubscriptionInline]
    change_form_template = "admin/accounts/profile/change_form.html"

    def get_urls(self):
        actions = [
            path(
                "<path:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="accounts_profile_erase",
            ),
            path(
                "<path:object_id>/subscriptions/<int:subscription_id>/<str:action>/",
                self.admin_site.admin_view(self.subscription_action_view),
                name="accounts_profile_subscription_action",
            ),
        ]
        return actions + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The profile page: the form, then every subscription with its staff actions
        and the activity trail (newest first)."""
        profile = self.get_object(request, object_id)
        # Erasing (object tools) replaces Django's delete, which refuses anyone subscribed.
        extra = {"show_delete": False, **(extra_context or {})}
        if profile is not None:
            extra["subscriptions"] = profile.subscription_records.select_related(
                "newsletter"
            ).order_by("newsletter__name")
            extra["activities"] = activities_for_profile(profile=profile)[:ACTIVITY_SHOWN]
            extra["enrollments"] = enrollments_of_profile(profile_id=profile.pk)[:ACTIVITY_SHOWN]
            extra["activity_shown"] = ACTIVITY_SHOWN
            extra["may_change_subscriptions"] = request.user.has_perm(
                "newsletters.change_subscription"
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def erase_view(self, request, object_id):
        """Ask once, then erase the person (``privacy.services.profile_erase``): their
        subscriptions, activity and address everywhere, unlike a plain delete."""
        if not self.has_delete_permission(request):
            raise PermissionDenied
        if not object_id.isdigit():
            raise Http404("no such profile")
        profile = get_object_or_404(Profile, pk=int(object_id))
        if request.method == "POST":
            email = profile.email
            profile_erase(profile=profile)
            self.message_user(request, f"Erased {email} and everything held about them.")
            return HttpResponseRedirect(reverse("admin:accounts_profile_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Erase {profile.email}?",
            "profile": profile,
            "subscriptions": profile.subscription_records.select_related("newsletter"),
        }
        return TemplateResponse(request, "admin/accounts/profile/erase.html", context)

    def subscription_action_view(self, request, object_id, subscription_id, action):
        """Unsubscribe, or resend the confirmation of, one of this person's subscriptions."""
        return _subscription_action(request, object_id, subscription_id, action)

    def save_model(self, request, obj, form, change):
        """The name and link as Django saves them; attributes and tags through their
        services, so each change sends its signal (``profile_attributes_changed``,
        ``profile_tagged``, ``profile_untagged``)."""
        attributes = obj.attributes
        if change:
            obj.attributes = Profile.objects.values_list("attributes", flat=True).get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        profile_attributes_set(profile=obj, attributes=attributes, source="admin")
        profile_tags_set(profile=obj, names=form.cleaned_data["tag_names"], source="admin")

    def delete_model(self, request, obj):
        """Deleting a profile here erases it, as the command and the API do: a plain
        delete would leave the address on deliveries, in the task queue and webhooks."""
        profile_erase(profile=obj)

    def delete_queryset(self, request, queryset):
        for profile in queryset:
            profile_erase(profile=profile)


@require_POST
def _subscription_action(request, object_id, subscription_id, action):
    if not request.user.has_perm("newsletters.change_subscription"):
        raise PermissionDenied
    if not object_id.isdigit():
        raise Http404("no such profile")
    subscription = get_object_or_404(
        Subscription.objects.select_related("profile", "newsletter"),
        pk=subscription_id,
        profile_id=object_id,
    )
    name = subscription.newsletter.name
    if action == "unsubscribe":
        ended = unsubscribe(
            email=subscription.profile.email,
            newsletter=subscription.newsletter,
            reason=f"unsubscribed by staff ({request.user.get_username()})",
        )
        if ended:
            messages.success(request, f"Unsubscribed from {name}.")
        else:
            messages.warning(request, f"The subscription to {name} had already ended.")
    elif action == "resend":
        if subscription_confirmation_resend(subscription=subscription):
            messages.success(request, f"The confirmation email for {name} is on its way.")
        else:
            messages.warning(request, f"The subscription to {name} is not waiting to be confirmed.")
    else:
        raise PermissionDenied(f"unknown action {action!r}")
    return HttpResponseRedirect(reverse("admin:accounts_profile_change", args=[object_id]))


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    """The tags in use; put them on people from a profile's page, the API or an import."""

    list_display = ["name", "created_at"]
    search_fields = ["name"]
    fields = ["name"]

    def has_add_permission(self, request):
        # Tags come into being when someone is tagged (their names cleaned the one way).
        return False

    def has_change_permission(self, request, obj=None):
        # A tag's name is what segments refer to: renaming is not offered.
        return False
