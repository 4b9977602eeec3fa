"""Engagement: each click and open as the redirect saw it (``Hit``), then judged (``Engagement``).

No IP address or user agent is stored anywhere: the redirect judges the agent while
it answers and keeps only its verdict (``Hit.agent``).
"""

from django.db import models


class Kind(models.TextChoices):
    CLICK = "click", "Click"
    OPEN = "open", "Open"


class Machine(models.TextChoices):
    """Why an event was judged a machine's; blank: a person's."""

    HUMAN = "", "Person"
    SCANNER = "scanner", "Known link scanner"
    HEAD = "head", "Not a GET"
    EARLY = "early", "Seconds after delivery"
    BURST = "burst", "Burst over the message's links"
    PROXY = "proxy", "Image proxy (Apple, Google, Yahoo)"


class Hit(models.Model):
    """A click or open waiting for the workers to judge and record it (an inbox).

    Written by the redirect in one short insert; ``engagement.services.hits_record``
    turns a batch of them into ``Engagement`` rows and deletes them. Plain ids, no
    foreign keys: the insert checks nothing and a deleted issue leaves a harmless row.
    """

    issue_id = models.BigIntegerField()
    delivery_id = models.BigIntegerField()
    kind = models.CharField(max_length=5, choices=Kind.choices)
    link_index = models.PositiveSmallIntegerField(null=True)
    agent = models.CharField(max_length=8, choices=Machine.choices, blank=True)
    at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.kind} of delivery {self.delivery_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class Engagement(models.Model):
    """One judged click or open of an issue.

    ``profile`` is kept only while the person is subscribed to the newsletter and
    never for a newsletter that keeps counts only: unsubscribing, bouncing,
    complaining and erasure set it to null, leaving an anonymous count.
    ``is_first`` marks a person's first human event of its kind for the issue, so
    unique counts survive that anonymising.
    """

    newsletter = models.ForeignKey(
        "newsletters.Newsletter", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    issue = models.ForeignKey(
        "publishing.Issue", on_delete=models.CASCADE, related_name="engagements", db_index=False
    )
    profile = models.ForeignKey(
        "accounts.Profile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="engagements",
    )
    kind = models.CharField(max_length=5, choices=Kind.choices)
    link_index = models.PositiveSmallIntegerField(null=True, blank=True)
    is_human = models.BooleanField()
    machine = models.CharField(max_length=8, choices=Machine.choices, blank=True)
    is_first = models.BooleanField(default=False)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Reports and "clicked/opened issue X" (segments) filter in this order.
            models.Index(
                fields=["issue", "kind", "is_human", "profile"], name="engagement_issue_kind"
            ),
            models.Index(
                fields=["newsletter", "kind", "is_human", "profile"],
                name="engagement_newsletter_kind",
            ),
        ]

    def __str__(self):
        return f"{self.kind} of issue {self.issue_id} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
