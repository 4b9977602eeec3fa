from django.contrib import admin, messages

from signalpost.newsletters.models import Newsletter, Subscription, Topic
from signalpost.newsletters.selectors import newsletters_with_active_count
from signalpost.newsletters.services import subscription_confirm, unsubscribe
from signalpost.postgresql.estimates import EstimatedCountPaginator


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

    def get_queryset(self, request):
        # Counted once for the whole list (cached on large deployments), not per row.
        return newsletters_with_active_count(super().get_queryset(request))

    @admin.display(description="Active subscribers", ordering="active_subscriber_count")
    def active_subscribers(self, newsletter):
        return newsletter.active_subscriber_count


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions change state only through the services, so the signals fire."""

    list_display = ["profile", "newsletter", "status", "source", "created_at", "subscribed_at"]
    list_filter = ["status", "source", "newsletter"]
    search_fields = ["profile__email"]
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
    actions = ["confirm_selected", "unsubscribe_selected"]

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
