"""Automations: a trigger, ordered steps, and each person's progress through them."""

from django.db import models

# The most steps an automation may have: the API and the validation refuse more.
STEPS_MAX = 50


class Automation(models.Model):
    """An email sequence of one newsletter, started for each person its trigger names.

    ``trigger`` is a catalogue signal with a condition: ``subscribed`` (the
    subscription to ``newsletter`` became active), ``tagged`` (``trigger_value``
    is the tag), ``attribute_changed`` (``trigger_value`` is the attribute key).
    A person leaves when they unsubscribe or bounce, when ``exit_tag`` is put on
    them, or at the end.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    class Trigger(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed to the newsletter"
        TAGGED = "tagged", "A tag was added"
        ATTRIBUTE_CHANGED = "attribute_changed", "An attribute changed"
        DATE_REACHED = "date_reached", "A date attribute was reached"

    newsletter = models.ForeignKey(
        "newsletters.Newsletter", on_delete=models.CASCADE, related_name="automations"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    trigger_value = models.CharField(max_length=100, blank=True)
    # ``date_reached``: seconds after the date (negative: before it), e.g. -259200 for
    # "3 days before"; 0 for every other trigger.
    trigger_offset_seconds = models.IntegerField(default=0)
    # Only subscriptions of these sources enroll on ``subscribed`` (empty: every source).
    trigger_sources = models.JSONField(default=list, blank=True)
    exit_tag = models.CharField(max_length=100, blank=True)
    # The welcome email of its newsletter: the one ``newsletters`` no longer sends itself.
    is_welcome = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["newsletter", "name"]
        indexes = [models.Index(fields=["newsletter", "trigger", "status"])]

    def __str__(self):
        return f"{self.newsletter}: {self.name}"


class Step(models.Model):
    """One step of an automation, run in ``position`` order.

    ``config`` by kind: ``wait`` ``{"seconds": N}`` or ``{"weekday": 0-6, "time":
    "HH:MM"}`` (Monday is 0, in the person's ``time_zone`` attribute, else UTC);
    ``email`` ``{"subject", "body_markdown", "preview_text"}`` (built into ``issue``,
    a hidden issue that owns the deliveries, links and clicks); ``tag_add`` /
    ``tag_remove`` ``{"tag"}``; ``set_attribute`` ``{"key", "value"}``; ``webhook``
    ``{"event"}``; ``branch`` ``{"if": {"clicked": position} | {"has_tag": tag},
    "goto": position}`` (forward only, so no loop); ``welcome`` ``{}`` (the newsletter's
    welcome email, its own templates: what a newsletter sent before automations).
    """

    class Kind(models.TextChoices):
        WAIT = "wait", "Wait"
        EMAIL = "email", "Send an email"
        TAG_ADD = "tag_add", "Add a tag"
        TAG_REMOVE = "tag_remove", "Remove a tag"
        SET_ATTRIBUTE = "set_attribute", "Set an attribute"
        WEBHOOK = "webhook", "Call the webhooks"
        BRANCH = "branch", "Branch"
        WELCOME = "welcome", "Send the newsletter's welcome email"

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)
    issue = models.OneToOneField(
        "publishing.Issue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="automation_step",
    )

    class Meta:
        ordering = ["automation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "position"], name="automations_step_position_unique"
            )
        ]

    def __str__(self):
        return f"{self.automation} #{self.position}: {self.kind}"


class Enrollment(models.Model):
    """One person's way through one automation.

    ``position``: the next step to run is the first at or after it. ``next_run_at``:
    when it is due (None once finished or exited). ``claimed_by`` names the task
    processing it; a claim older than the worker lease is taken for lost.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "In progress"
        FINISHED = "finished", "Finished"
        EXITED = "exited", "Exited"

    # No index of their own: the unique (automation, profile) and the (profile, status)
    # indexes lead with them, and each index more is one more write per claim and move.
    automation = models.ForeignKey(
        Automation, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    profile = models.ForeignKey(
        "accounts.Profile", on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    position = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Failed tries of the current step (a welcome the mail server did not take).
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=100, blank=True)
    # ``date_reached``: the attribute's value that enrolled them (the same date never
    # enrolls the same person twice; a new one does).
    trigger_date = models.CharField(max_length=40, blank=True)
    enrolled_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "profile"], name="automations_enrollment_unique"
            )
        ]
        indexes = [
            # The due scan: active ones by time.
            models.Index(
                fields=["next_run_at"],
                name="automations_enrollment_due",
                condition=models.Q(status="active"),
            ),
            models.Index(fields=["profile", "status"]),
        ]

    def __str__(self):
        return f"{self.profile} in {self.automation} ({self.status})"


class StepRun(models.Model):
    """A step that ran for an enrollment: at most one per person and step."""

    # No index of its own: the unique (enrollment, step) leads with it.
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    step = models.ForeignKey(Step, null=True, on_delete=models.SET_NULL, related_name="runs")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20)
    outcome = models.CharField(max_length=100, blank=True)
    ran_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"], name="automations_steprun_unique"
            )
        ]

    def __str__(self):
        return f"{self.enrollment} step {self.position}: {self.outcome}"
