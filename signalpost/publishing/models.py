from django.conf import settings
from django.db import models

# Inboxes show 40 to 140 characters of it, depending on the client and the screen.
PREVIEW_TEXT_MAX_LENGTH = 150


class Issue(models.Model):
    """One post of a newsletter: written in Markdown, sent to its subscribers, archived."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    newsletter = models.ForeignKey(
        "newsletters.Newsletter", on_delete=models.PROTECT, related_name="issues"
    )
    subject = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    body_markdown = models.TextField("body (Markdown)")
    body_html = models.TextField(editable=False, blank=True)
    # The line an inbox shows after the subject (the email's hidden preheader); blank:
    # the body's first sentence.
    preview_text = models.CharField(
        max_length=PREVIEW_TEXT_MAX_LENGTH,
        blank=True,
        help_text="What the inbox shows after the subject, one line of at most "
        f"{PREVIEW_TEXT_MAX_LENGTH} characters. Leave it empty to show the body's first sentence.",
    )
    # Sent to the segment's subscribers only; empty: every active subscriber.
    segment = models.ForeignKey(
        "newsletters.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="issues",
        help_text="Send only to the subscribers this segment matches. Empty: every subscriber.",
    )
    # The segment's filter as it was at the click: editing the segment later changes nothing.
    segment_rules = models.JSONField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    recipient_count = models.PositiveIntegerField(default=0, editable=False)
    # The body's http(s) links in order, fixed when the send starts: a tracked link's
    # token names an index here, never a URL (publishing.tracking).
    tracked_links = models.JSONField(default=list, editable=False, blank=True)
    # Who gets a send is fixed at the click (issue_send) and the deliveries are
    # created by workers in chunks of subscription ids after it (issue_prepare_chunk):
    # the subscriptions active then, up to this id, subscribed by this time.
    recipients_until = models.DateTimeField(null=True, blank=True, editable=False)
    recipients_last_subscription_id = models.BigIntegerField(null=True, editable=False)
    # The highest subscription id whose delivery (if any) is created; set when all are.
    prepared_through_id = models.BigIntegerField(default=0, editable=False)
    prepared_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    # An automation's email step (automations.Step.issue): never sent as a whole, never
    # listed, archived nor fed; its deliveries, links and clicks are the step's.
    is_automated = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["newsletter", "slug"], name="publishing_issue_slug_unique"
            ),
        ]
        indexes = [models.Index(fields=["newsletter", "status", "-sent_at"])]
        ordering = ["-created_at"]
        # Writing an issue (change) and emailing it to every subscriber are different trusts.
        permissions = [("send_issue", "Can send or schedule issues to subscribers")]

    def __str__(self):
        return f"{self.newsletter}: {self.subject}"

    @property
    def preparing(self) -> bool:
        """Whether the send has started and its deliveries are still being created (or
        will be, once a pause ends)."""
        return self.status in (self.Status.SENDING, self.Status.PAUSED) and self.prepared_at is None


class Delivery(models.Model):
    """One issue to one recipient. ``sending`` means claimed by a batch task in flight."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"
        SKIPPED = "skipped", "Skipped (left before it was sent)"
        HELD = "held", "Held (the mail server refused the sender)"
        CANCELLED = "cancelled", "Cancelled (the send was cancelled before it)"

    # The statuses nothing moves a delivery out of: its person's send is over.
    FINAL_STATUSES = (
        Status.SENT,
        Status.FAILED,
        Status.BOUNCED,
        Status.SKIPPED,
        Status.CANCELLED,
    )

    # No index of its own: the unique (issue, profile) and the claim's (issue,
    # claimed_by) indexes both lead with it. Each index is one more entry written
    # for every claim (bench/README.md, "Fan-out at 1,000,000").
    issue = models.ForeignKey(
        Issue, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    profile = models.ForeignKey(
        "accounts.Profile", null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The batch task that claimed it; "" while queued or held (and when it left the
    # queue without a claim: skipped, cancelled). Read with the issue: the claim's index.
    claimed_by = models.CharField(max_length=64, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issue", "profile"], name="publishing_delivery_unique"),
        ]
        # No index holds ``status`` (nor ``message_id``, ``sent_at``), so the sent mark,
        # one UPDATE per email, can be a HOT update: a new row version on the same page
        # and no index entry. Queued deliveries are found as unclaimed ones instead
        # (``claimed_by = ''``, then ``status`` read from the row). Without ``id``,
        # equal keys share one entry (B-tree deduplication): 7 MB at 1,000,000
        # rows, not 105 MB with a claimer and an id in each.
        indexes = [
            models.Index(fields=["issue", "claimed_by"], name="publishing_delivery_claim"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.issue} → {self.email} ({self.status})"
