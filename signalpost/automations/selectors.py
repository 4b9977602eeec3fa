"""Reading automations: the funnel (who is where, what was sent and clicked)."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from signalpost.accounts.models import Profile
from signalpost.automations.dates import DateDay, DateDue, days_around
from signalpost.automations.models import Automation, Enrollment, Step, StepRun
from signalpost.engagement.models import Engagement, Kind
from signalpost.newsletters.models import Subscription
from signalpost.publishing.models import Delivery


def automation_funnel(*, automation: Automation) -> dict[str, Any]:
    """Return how many people are in each state, and per step: waiting before it
    (``at_step``), reached it (``ran``), sent (email) and clicked (email, people).

    An email step's ``ran`` counts its issue's deliveries whose send is over (sent,
    failed, bounced, skipped, cancelled): the delivery is that step's record, so
    someone enrolled again after finishing counts once; other steps' count their
    ``StepRun`` rows."""
    states = dict(
        Enrollment.objects.filter(automation=automation)
        .values_list("status")
        .annotate(count=Count("id"))
        .values_list("status", "count")
    )
    active = Enrollment.objects.filter(automation=automation, status=Enrollment.Status.ACTIVE)
    waiting = dict(
        active.values_list("position").annotate(count=Count("id")).values_list("position", "count")
    )
    ran = dict(
        StepRun.objects.filter(enrollment__automation=automation)
        .values_list("position")
        .annotate(count=Count("id"))
        .values_list("position", "count")
    )
    steps = []
    for step in automation.steps.all():
        row = {
            "position": step.position,
            "kind": step.kind,
            "at_step": waiting.get(step.position, 0),
            "ran": ran.get(step.position, 0),
            "sent": None,
            "clicked": None,
        }
        if step.kind == Step.Kind.EMAIL and step.issue_id is not None:
            delivered = dict(
                Delivery.objects.filter(issue_id=step.issue_id, status__in=Delivery.FINAL_STATUSES)
                .values_list("status")
                .annotate(count=Count("id"))
                .values_list("status", "count")
            )
            row["ran"] = sum(delivered.values())
            row["sent"] = delivered.get(Delivery.Status.SENT, 0)
            row["clicked"] = (
                Engagement.objects.filter(issue_id=step.issue_id, kind=Kind.CLICK, is_human=True)
                .values("profile_id")
                .distinct()
                .count()
            )
        steps.append(row)
    return {
        "not_a_date": (
            dated_subscribers(automation=automation).filter(due__isnull=True).count()
            if automation.trigger == Automation.Trigger.DATE_REACHED
            else None
        ),
        "enrolled": sum(states.values()),
        "active": states.get(Enrollment.Status.ACTIVE, 0),
        "finished": states.get(Enrollment.Status.FINISHED, 0),
        "exited": states.get(Enrollment.Status.EXITED, 0),
        "steps": steps,
    }


def enrollments_of(*, automation: Automation, status: str | None = None) -> QuerySet[Enrollment]:
    """``automation``'s enrollments (in ``status``), oldest first, with their profiles."""
    found = Enrollment.objects.filter(automation=automation).select_related("profile")
    if status:
        found = found.filter(status=status)
    return found.order_by("id")


def enrollments_of_profile(*, profile_id: int) -> QuerySet[Enrollment]:
    """A person's enrollments, newest first, with their automations (the profile page)."""
    return (
        Enrollment.objects.filter(profile_id=profile_id)
        .select_related("automation__newsletter")
        .order_by("-enrolled_at")
    )


def dated_subscribers(*, automation: Automation) -> QuerySet[Any]:
    """The active subscribers of ``automation``'s newsletter whose attribute
    ``trigger_value`` is set, each with ``date_value`` (its text) and ``due`` (the
    moment it names, ``dates.DateDue``; None when it is no date)."""
    key = automation.trigger_value
    return (
        Profile.objects.filter(
            pk__in=Subscription.objects.filter(
                newsletter_id=automation.newsletter_id, status=Subscription.Status.ACTIVE
            ).values("profile_id")
        )
        .annotate(date_value=KeyTextTransform(key, "attributes"))
        .filter(date_value__isnull=False)
        .annotate(
            due=DateDue(
                KeyTextTransform(key, "attributes"), KeyTextTransform("time_zone", "attributes")
            )
        )
    )


def profiles_date_reached(
    *, automation: Automation, now: datetime, grace: timedelta, limit: int | None = None
) -> QuerySet[Any]:
    """``(profile id, date value)`` rows of who a ``date_reached`` automation takes now
    (the first ``limit`` of them, by id).

    Their date moved by the offset passed, at most ``grace`` ago; they are not on
    their way through it, and that same date did not enroll them before. One query,
    which computes the moment only for values whose first ten characters are a day
    near enough to be due (``dates.days_around``).
    """
    moment = now - timedelta(seconds=automation.trigger_offset_seconds)
    handled = Enrollment.objects.filter(
        automation_id=automation.pk, profile_id=OuterRef("pk")
    ).filter(Q(status=Enrollment.Status.ACTIVE) | Q(trigger_date=OuterRef("date_value")))
    first_day, last_day = days_around(earliest=moment - grace, latest=moment)
    found: QuerySet[Any] = (
        dated_subscribers(automation=automation)
        .annotate(day=DateDay(KeyTextTransform(automation.trigger_value, "attributes")))
        .filter(day__range=(first_day, last_day))
        .filter(due__range=(moment - grace, moment))
        .exclude(Exists(handled))
        .order_by("pk")
        .values_list("pk", "date_value")
    )
    if limit is not None:
        found = found[:limit]
    return found
