from django.contrib import admin

from signalpost.accounts.models import Profile
from signalpost.accounts.privacy import profile_erase
from signalpost.newsletters.models import Subscription


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "profile"
    extra = 0
    can_delete = False
    fields = ["newsletter", "status", "source", "subscribed_at", "unsubscribed_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "user", "created_at"]
    search_fields = ["email", "name"]
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
