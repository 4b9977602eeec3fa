"""Reading automations: the funnel (who is where, what was sent and clicked)."""

from typing import Any

from django.db.models import Count, QuerySet

from signalpost.automations.models import Automation, Enrollment, Step, StepRun
from signalpost.engagement.models import Engagement, Kind
from signalpost.publishing.models import Delivery


def automation_funnel(*, automation: Automation) -> dict[str, Any]:
    """Return how many people are in each state, and per step: waiting before it
    (``at_step``), reached it (``ran``), sent (email) and clicked (email, people)."""
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
            row["sent"] = Delivery.objects.filter(
                issue_id=step.issue_id, status=Delivery.Status.SENT
            ).count()
            row["clicked"] = (
                Engagement.objects.filter(issue_id=step.issue_id, kind=Kind.CLICK, is_human=True)
                .values("profile_id")
                .distinct()
                .count()
            )
        steps.append(row)
    return {
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
