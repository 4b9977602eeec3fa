from django.db import models


class Topic(models.Model):
    """An interest people subscribe by, such as "Python" or "Design"."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Newsletter(models.Model):
    class OptIn(models.TextChoices):
        DOUBLE = "double", "Double opt-in (subscriber confirms by email)"
        SINGLE = "single", "Single opt-in"

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="newsletters")
    opt_in = models.CharField(max_length=10, choices=OptIn.choices, default=OptIn.DOUBLE)
    is_public = models.BooleanField(
        default=True, help_text="Listed on the site and open to subscription through its forms."
    )
    sender_name = models.CharField(max_length=100, blank=True)
    sender_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Subscription(models.Model):
    """One profile's subscription to one newsletter, with its state and its evidence."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class Source(models.TextChoices):
        FORM = "form", "Web form"
        API = "api", "API"
        IMPORT = "import", "Import"
        ADMIN = "admin", "Admin"

    # Neither key has an index of its own: the unique (profile, newsletter)
    # constraint and the (newsletter, status) index start with them, and every
    # index is one more write per subscriber (an import writes a million).
    profile = models.ForeignKey(
        "accounts.Profile",
        on_delete=models.CASCADE,
        related_name="subscription_records",
        db_index=False,
    )
    newsletter = models.ForeignKey(
        Newsletter, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    subscribed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribe_reason = models.CharField(max_length=200, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_user_agent = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "newsletter"], name="newsletters_subscription_unique"
            ),
        ]
        # With the id: a send's preparing chunks walk a newsletter's active
        # subscriptions in id order through this index alone.
        indexes = [models.Index(fields=["newsletter", "status", "id"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.profile} → {self.newsletter} ({self.status})"
