from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower

from signalpost.accounts.models import Profile
from signalpost.accounts.services import profile_attributes_check
from signalpost.newsletters.models import Subscription
from signalpost.postgresql.estimates import EstimatedCountPaginator
from signalpost.privacy.services import profile_erase


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

    def delete_model(self, request, obj):
        """Deleting a profile here erases it, as the command and the API do: a plain
        delete would leave the address on deliveries, in the task queue and webhooks."""
        profile_erase(profile=obj)

    def delete_queryset(self, request, queryset):
        for profile in queryset:
            profile_erase(profile=profile)
