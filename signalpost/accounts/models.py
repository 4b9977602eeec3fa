from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class ProfileQuerySet(models.QuerySet["Profile"]):
    def for_email(self, email: str) -> "ProfileQuerySet":
        """The profile whose address is ``email``, ignoring case.

        Compares ``LOWER(email)``, the expression of the unique constraint, so
        the lookup is an index probe; ``email = ...`` would scan every profile.
        """
        return self.alias(email_lower=Lower("email")).filter(email_lower=email.lower())


class Profile(models.Model):
    """One person, known by one email address (the tutorial's ``user.profile``).

    ``subscriptions`` holds the newsletters this profile is actively subscribed
    to; receivers of ``user_subscribed`` / ``user_unsubscribed`` keep it in step
    with the ``Subscription`` rows, which hold the status and its history.
    """

    email = models.EmailField(max_length=254)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="profile",
    )
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    soft_bounce_count = models.PositiveIntegerField(
        default=0,
        help_text="Soft bounces that count now: within the window, none delivered since.",
    )
    # NULL, not [], when none: inserts that name their columns (imports) need not know it.
    soft_bounces = models.JSONField(
        null=True,
        blank=True,
        help_text="When the soft bounces that count happened (ISO 8601, oldest first).",
    )
    subscriptions = models.ManyToManyField(
        "newsletters.Newsletter",
        blank=True,
        related_name="subscriber_profiles",
        help_text="Newsletters with an active subscription (kept by signal receivers).",
    )
    tags = models.ManyToManyField(
        "accounts.Tag", through="accounts.ProfileTag", blank=True, related_name="profiles"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProfileQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_profile_email_unique_ci"),
        ]
        ordering = ["email"]

    def __str__(self):
        return self.email


class Tag(models.Model):
    """A label staff, imports and the API put on profiles, such as "vip" or "beta".

    Names are stored as ``services.tag_name_clean`` makes them: lower case, on one line.
    """

    name = models.CharField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ProfileTag(models.Model):
    """One tag on one profile. The unique (profile, tag) pair answers "the tags of a
    profile"; the (tag, profile) index answers "the profiles with a tag" (segments)."""

    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="tag_links", db_index=False
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, related_name="profile_links", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "tag"], name="accounts_profiletag_unique"),
        ]
        indexes = [models.Index(fields=["tag", "profile"], name="accounts_profiletag_tag_idx")]

    def __str__(self):
        return f"{self.profile_id}: {self.tag_id}"
