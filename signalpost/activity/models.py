from django.db import models


class Activity(models.Model):
    """One event in a profile's history. Rows are only ever added."""

    class Event(models.TextChoices):
        SUBSCRIPTION_REQUESTED = "subscription_requested", "Subscription requested"
        SUBSCRIBED = "subscribed", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        USER_LOGGED_IN = "user_logged_in", "Logged in"
        DELIVERY_FAILED = "delivery_failed", "An issue could not be delivered"
        IMPORTED = "imported", "Imported"
        LINK_CLICKED = "link_clicked", "Clicked a link in an issue"
        EMAIL_OPENED = "email_opened", "Opened an issue"

    # No index of its own: the (profile, -created_at) index below starts with it.
    profile = models.ForeignKey(
        "accounts.Profile", on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    event = models.CharField(max_length=40, choices=Event.choices)
    newsletter = models.ForeignKey(
        "newsletters.Newsletter",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activities",
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["profile", "-created_at"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.profile} {self.event}"
