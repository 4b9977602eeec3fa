from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename

from signalpost.api.models import ApiToken
from signalpost.api.tokens import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    fields = ["name"]
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        # A token cannot be edited; the change permission is what allows revoking one.
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def save_model(self, request, obj, form, change):
        token, raw = api_token_create(name=form.cleaned_data["name"], created_by=request.user)
        obj.pk = token.pk
        self.message_user(
            request,
            f"Token created. Copy it now, it will not be shown again: {raw}",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
