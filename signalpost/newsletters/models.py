import contextlib

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.storage import Storage, storages
from django.core.validators import RegexValidator
from django.db import models

from signalpost.newsletters.attributes import (
    EditableAttribute,
    editable_attributes_parse,
    editable_attributes_validate,
)
from signalpost.newsletters.languages import language_choices
from signalpost.newsletters.origins import origin_normalize, origins_parse, origins_validate

PRIVATE_STORAGE_MISSING = (
    "Subscriber imports keep the uploaded files in STORAGES['private'], which this project "
    "does not define: add a storage outside every served folder, e.g. STORAGES['private'] = "
    "{'BACKEND': 'django.core.files.storage.FileSystemStorage', "
    "'OPTIONS': {'location': BASE_DIR / 'private'}}."
)


class _PrivateStorageMissing(Storage):
    """Stands in for ``STORAGES['private']`` in a project without one: refuses every use
    with the fix (manage.py check warns of it, signalpost.W003)."""

    def _refuse(self, *args, **kwargs):
        raise ImproperlyConfigured(PRIVATE_STORAGE_MISSING)

    _open = _save = delete = exists = listdir = size = url = path = _refuse


def _private_storage():
    """Where uploaded subscriber files live: never under a URL the site serves."""
    if "private" not in settings.STORAGES:
        return _PrivateStorageMissing()
    return storages["private"]


class Topic(models.Model):
    """An interest people subscribe by, such as "Python" or "Design"."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# A CSS colour written into emails' stylesheets: nothing but #rrggbb may get there.
BRAND_COLOR_VALIDATOR = RegexValidator(
    r"^#[0-9a-fA-F]{6}$", "Enter a colour as #rrggbb, e.g. #0b5cad.", code="invalid"
)


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
    # The subscribe form other websites may embed (docs/subscribers.md#embedding).
    embed_allowed = models.BooleanField(
        "embedding allowed",
        default=False,
        help_text="Other websites may carry this newsletter's subscribe form. "
        "Subscribing through it always takes a confirmation by email.",
    )
    embed_origins = models.TextField(
        "allowed origins",
        blank=True,
        validators=[origins_validate],
        help_text="The sites that may carry the form, one a line as scheme://host[:port] "
        "(https://blog.example.com). Empty: the plain form from any site, but no link "
        "back, no script answers and no iframe: those need the site listed here.",
    )
    language = models.CharField(
        max_length=15,
        blank=True,
        choices=language_choices,
        help_text=(
            "The language of its emails, issue pages and archive. Empty: the site's "
            "default for emails; each reader's own on the pages."
        ),
    )
    # Its emails' branding; each left empty takes the site's (SIGNALPOST_BRAND_*).
    brand_logo_url = models.URLField(
        "logo URL",
        blank=True,
        help_text="An image at the top of every email (https, about 600 px wide at most).",
    )
    brand_color = models.CharField(
        "colour",
        max_length=7,
        blank=True,
        validators=[BRAND_COLOR_VALIDATOR],
        help_text="Buttons and links in emails, as #rrggbb; dark enough to read on white.",
    )
    postal_address = models.TextField(
        max_length=300,
        blank=True,
        help_text="The sender's postal address in every email's footer (CAN-SPAM asks for one).",
    )
    subscriber_attributes = models.TextField(
        "attributes subscribers edit",
        blank=True,
        validators=[editable_attributes_validate],
        help_text="Shown in the preference center to this newsletter's subscribers, one a "
        "line: key: Label, or key: Label = choice, choice (frequency: How often? = weekly, "
        "monthly).",
    )
    # Engagement (docs/engagement.md): what its issues' emails let the site count.
    track_clicks = models.BooleanField(
        "track clicks",
        default=True,
        help_text="Links in the HTML part go through this site, which counts each click "
        "(scanners filtered out) before sending the reader on.",
    )
    track_plain_text_links = models.BooleanField(
        "track plain-text links",
        default=False,
        help_text="Also route the links of the plain-text part through this site. Off: "
        "plain-text readers see the real addresses.",
    )
    track_opens = models.BooleanField(
        "track opens",
        default=False,
        help_text="Add an invisible image that counts opens. Unreliable: many mail apps "
        "block images and privacy proxies fetch them for everyone.",
    )
    engagement_aggregate_only = models.BooleanField(
        "counts only (no per-person engagement)",
        default=False,
        help_text="Keep only counts per issue and link: no record of who clicked or opened.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def editable_attributes(self) -> list[EditableAttribute]:
        """The attributes its subscribers may edit (none when the declaration is broken)."""
        try:
            return editable_attributes_parse(self.subscriber_attributes)
        except ValidationError:
            return []

    def clean(self):
        super().clean()
        # Stored as browsers send them, one a line.
        with contextlib.suppress(ValidationError):  # clean_fields reported it on the field
            self.embed_origins = "\n".join(origins_parse(self.embed_origins))

    @property
    def engagement_notice(self) -> str:
        """What the site records when a subscriber reads this newsletter's emails, in words."""
        from django.utils.translation import gettext as _

        if not (self.track_clicks or self.track_opens):
            return _("Nothing: its emails link straight to their pages and load no tracking image.")
        counted = []
        if self.track_clicks:
            counted.append(_("which links in its emails are followed"))
        if self.track_opens:
            counted.append(_("whether its emails are opened (an invisible image)"))
        who = (
            _("Only totals per issue and link are kept, never who it was.")
            if self.engagement_aggregate_only
            else _(
                "It is recorded against your subscription while you are subscribed, and "
                "forgotten when you leave or erase your data."
            )
        )
        return _("We count %(what)s. %(who)s No IP address or browser details are stored.") % {
            "what": _(" and ").join(counted),
            "who": who,
        }

    @property
    def embed_origin_list(self) -> list[str]:
        """The allowed origins in the form browsers send them (lines that are none left out)."""
        origins = (origin_normalize(line) for line in self.embed_origins.splitlines())
        return [origin for origin in origins if origin]


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
        EMBED = "embed", "Form on another website"

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


class SubscriberImport(models.Model):
    """A CSV import started from the admin: its file, its progress and its rejected rows.

    The worker runs it (``newsletters.tasks.subscriber_import_run``) and counts as it
    goes, so the page can show a progress bar; rejected rows go to ``report``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Refused"

    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="imports")
    # Deleted once the import finished: the addresses need not lie around.
    file = models.FileField(upload_to="imports/", storage=_private_storage, blank=True)
    file_name = models.CharField(max_length=255)
    report = models.FileField(upload_to="imports/", storage=_private_storage, blank=True)
    confirm = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    lines = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    # Asked for ("" recognises it from the columns), then what the import recognised.
    format = models.CharField(max_length=20, blank=True)
    recognised_format = models.CharField(max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.file_name} → {self.newsletter}"

    @property
    def percent(self):
        """How far the import is, in percent of the file's data lines (100 once finished)."""
        if self.status in {self.Status.DONE, self.Status.FAILED}:
            return 100
        return min(99, round(100 * self.rows / self.lines)) if self.lines else 0


class EmailTemplate(models.Model):
    """An email template edited in the admin, used instead of the file of the same name.

    For one newsletter, or (``newsletter`` empty) for every newsletter without its own.
    ``body`` is the active version; every saved version is kept in ``versions``.
    """

    class Name(models.TextChoices):
        ISSUE_HTML = "issue.html", "Issue (HTML)"
        ISSUE_TEXT = "issue.txt", "Issue (plain text)"
        CONFIRMATION_SUBJECT = "confirmation_subject.txt", "Confirmation: subject"
        CONFIRMATION_HTML = "confirmation.html", "Confirmation (HTML)"
        CONFIRMATION_TEXT = "confirmation.txt", "Confirmation (plain text)"
        WELCOME_SUBJECT = "welcome_subject.txt", "Welcome: subject"
        WELCOME_HTML = "welcome.html", "Welcome (HTML)"
        WELCOME_TEXT = "welcome.txt", "Welcome (plain text)"
        PREFERENCES_SUBJECT = "preferences_link_subject.txt", "Preference link: subject"
        PREFERENCES_HTML = "preferences_link.html", "Preference link (HTML)"
        PREFERENCES_TEXT = "preferences_link.txt", "Preference link (plain text)"

    newsletter = models.ForeignKey(
        Newsletter,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="email_templates",
        help_text="Empty: every newsletter that has no template of this name of its own.",
    )
    name = models.CharField(max_length=40, choices=Name.choices)
    body = models.TextField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["newsletter", "name"], name="newsletters_emailtemplate_unique"
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(newsletter__isnull=True),
                name="newsletters_emailtemplate_unique_default",
            ),
        ]
        ordering = ["newsletter__name", "name"]

    def __str__(self):
        return f"{self.name} ({self.newsletter or 'every newsletter'})"


class EmailTemplateVersion(models.Model):
    """One saved version of an ``EmailTemplate``: who saved what, when. Only ever added."""

    template = models.ForeignKey(EmailTemplate, on_delete=models.CASCADE, related_name="versions")
    body = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.template} at {self.created_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """An address that must never be mailed: for one newsletter, or (``newsletter`` empty)
    for every newsletter.

    Written by imports (another service's unsubscribed, cleaned, bounced, complained or
    blocklisted people) and by Signalpost's own hard bounces and complaints. Only the
    person lifts it, by confirming a new double opt-in (``suppressions.suppression_lift``).
    ``email_hash`` (SHA-256 of the stored address) is what every check compares: erasure
    blanks ``email`` and keeps the hash, so an erased address stays suppressed.
    """

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        CLEANED = "cleaned", "Cleaned (undeliverable)"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained (spam report)"
        BLOCKLISTED = "blocklisted", "Blocklisted"

    email = models.CharField(max_length=254, blank=True)
    email_hash = models.CharField(max_length=64)
    newsletter = models.ForeignKey(
        Newsletter,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="suppressions",
        help_text="Empty: every newsletter.",
    )
    reason = models.CharField(max_length=12, choices=Reason.choices)
    source = models.CharField(max_length=40, help_text="import:<format>, bounce or complaint.")
    suppressed_at = models.DateTimeField(help_text="When it happened, as the source says.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["email_hash", "newsletter"], name="newsletters_suppression_unique"
            ),
            models.UniqueConstraint(
                fields=["email_hash"],
                condition=models.Q(newsletter__isnull=True),
                name="newsletters_suppression_unique_global",
            ),
        ]
        # What each index serves (every import writes the table's indexes for each row):
        # the two unique ones, the lookups by hash (checks, lifting, erasure); this one, the
        # fan-out's NOT EXISTS by address (publishing.writes, publishing.selectors) and the
        # admin's order by address; the newsletter's, a newsletter's rows (its deletion,
        # the admin's filter). ``db_index=True`` on ``email`` also made PostgreSQL keep a
        # ``varchar_pattern_ops`` copy for ``LIKE 'prefix%'``, which no query asks (the
        # admin's search is ``icontains``): it cost an import 14% of the buffers it
        # touched writing suppression rows (bench/README.md, # Import).
        indexes = [models.Index(fields=["email"], name="newsletters_suppression_email")]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return (
            f"{self.email or '(erased)'}: {self.reason} ({self.newsletter or 'every newsletter'})"
        )


class Segment(models.Model):
    """A saved, named filter over a newsletter's active subscribers (docs/audiences.md).

    ``rules`` is the filter in its JSON form, ``{"match": "all"|"any", "conditions":
    [...]}``, checked by ``segments.segment_rules_check`` before it is stored; the
    same rules compile to one ORM query (``segments.segment_filter``).
    """

    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=100)
    rules = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["newsletter", "name"], name="newsletters_segment_unique"
            )
        ]
        ordering = ["newsletter__name", "name"]

    def __str__(self):
        return f"{self.newsletter}: {self.name}"
