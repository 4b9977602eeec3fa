from django.contrib import admin

from signalpost.activity.models import Activity


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    """The audit trail: readable by staff, written only by receivers."""

    list_display = ["created_at", "profile", "event", "newsletter"]
    list_filter = ["event", "newsletter"]
    search_fields = ["profile__email"]
    list_select_related = ["profile", "newsletter"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
