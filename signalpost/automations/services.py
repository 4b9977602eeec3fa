"""Writing automations and enrolling people: each function one transaction."""

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.automations import clock
from signalpost.automations.engine import enrollments_end
from signalpost.automations.models import Automation, Enrollment, Step, StepRun
from signalpost.automations.selectors import profiles_date_reached
from signalpost.automations.validation import (
    exit_tag_clean,
    name_clean,
    steps_clean,
    trigger_clean,
    trigger_offset_clean,
)
from signalpost.automations.writes import enrollments_insert
from signalpost.durable.services import task_enqueue
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_render
from signalpost.publishing.tracking import links_find

# People enroll while it is active or paused (a pause holds them at the start).
ENROLLING = (Automation.Status.ACTIVE, Automation.Status.PAUSED)


@transaction.atomic
def automation_create(
    *,
    newsletter: Newsletter,
    name: object,
    trigger: object,
    trigger_value: object = "",
    trigger_sources: object = None,
    trigger_offset_seconds: object = 0,
    exit_tag: object = "",
    steps: object = None,
) -> Automation:
    """Create a draft automation of ``newsletter`` with ``steps``; raise ``ValidationError``
    naming the field (``steps``: the position) when anything is refused."""
    trigger, value, sources = trigger_clean(
        trigger=trigger, value=trigger_value, sources=trigger_sources
    )
    automation = Automation(
        newsletter=newsletter,
        name=name_clean(name),
        trigger=trigger,
        trigger_value=value,
        trigger_sources=sources,
        trigger_offset_seconds=trigger_offset_clean(trigger=trigger, offset=trigger_offset_seconds),
        exit_tag=exit_tag_clean(exit_tag),
    )
    cleaned = steps_clean(newsletter=newsletter, steps=[] if steps is None else steps)
    automation.save()
    _steps_store(automation=automation, steps=cleaned)
    return automation


# Who the welcome greets, as before automations: people who asked themselves
# (imports and staff additions stay silent).
WELCOMED_SOURCES = [
    Subscription.Source.FORM,
    Subscription.Source.API,
    Subscription.Source.EMBED,
]
WELCOME_NAME = "Welcome email"


@transaction.atomic
def automation_welcome_create(*, newsletter: Newsletter) -> Automation:
    """Give ``newsletter`` its welcome automation, active: on subscribing through the form,
    the API or an embedded form, the newsletter's welcome email. Every new newsletter
    gets one; edit it to add steps, delete it to send no welcome at all."""
    automation = Automation.objects.create(
        newsletter=newsletter,
        name=WELCOME_NAME,
        status=Automation.Status.ACTIVE,
        trigger=Automation.Trigger.SUBSCRIBED,
        trigger_sources=sorted(WELCOMED_SOURCES),
        is_welcome=True,
    )
    Step.objects.create(automation=automation, position=0, kind=Step.Kind.WELCOME, config={})
    return automation


@transaction.atomic
def automation_update(*, automation: Automation, **changes: Any) -> Automation:
    """Change the given fields of ``automation`` (those ``automation_create`` takes).

    ``steps`` replaces the steps by position: the step at a position takes the
    new one's place for everyone who has not reached it; who is past it is not
    affected (their next step is a later position). An email step that stays an
    email keeps its hidden issue, so nobody who had it gets it again.
    """
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    if "name" in changes:
        automation.name = name_clean(changes["name"])
    if {"trigger", "trigger_value", "trigger_sources", "trigger_offset_seconds"} & set(changes):
        _trigger_change(automation, changes)
    if "exit_tag" in changes:
        automation.exit_tag = exit_tag_clean(changes["exit_tag"])
    unknown = set(changes) - {
        "name",
        "trigger",
        "trigger_value",
        "trigger_sources",
        "trigger_offset_seconds",
        "exit_tag",
        "steps",
    }
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Not a setting of an automation."})
    if "steps" in changes:
        cleaned = steps_clean(newsletter=automation.newsletter, steps=changes["steps"])
        if automation.status == Automation.Status.ACTIVE and not cleaned:
            raise ValidationError({"steps": "An active automation needs a step."})
        _steps_store(automation=automation, steps=cleaned)
    automation.save()
    return automation


def _trigger_change(automation: Automation, changes: dict[str, Any]) -> None:
    """Set the trigger fields ``changes`` names; a trigger that is no longer
    ``date_reached`` drops its offset unless one is given (and refused)."""
    (
        automation.trigger,
        automation.trigger_value,
        automation.trigger_sources,
    ) = trigger_clean(
        trigger=changes.get("trigger", automation.trigger),
        value=changes.get("trigger_value", automation.trigger_value),
        sources=changes.get("trigger_sources", automation.trigger_sources),
    )
    kept = (
        automation.trigger_offset_seconds
        if automation.trigger == Automation.Trigger.DATE_REACHED
        else 0
    )
    automation.trigger_offset_seconds = trigger_offset_clean(
        trigger=automation.trigger, offset=changes.get("trigger_offset_seconds", kept)
    )


def _steps_store(*, automation: Automation, steps: list[dict[str, Any]]) -> None:
    existing = {step.position: step for step in automation.steps.select_related("issue")}
    for position, cleaned in enumerate(steps):
        step = existing.pop(position, None) or Step(automation=automation, position=position)
        step.kind, step.config = cleaned["kind"], cleaned["config"]
        if step.kind == Step.Kind.EMAIL:
            step.issue = _step_issue_store(automation=automation, step=step)
        else:
            step.issue = None
        step.save()
    Step.objects.filter(pk__in=[step.pk for step in existing.values()]).delete()


def _step_issue_store(*, automation: Automation, step: Step) -> Issue:
    """The hidden issue an email step sends: its deliveries, links and clicks are the step's."""
    config = step.config
    body_html = issue_render(body_markdown=config["body_markdown"])
    issue = step.issue or Issue(
        newsletter=automation.newsletter,
        is_automated=True,
        slug=f"automation-{automation.pk}-{clock.now():%Y%m%d%H%M%S%f}",
    )
    issue.subject = config["subject"]
    issue.body_markdown = config["body_markdown"]
    issue.preview_text = config.get("preview_text", "")
    issue.body_html = body_html
    # A click's token names an index into these: a link that moves keeps working
    # for what was sent before only while its index holds, as for issues.
    issue.tracked_links = links_find(body_html)
    issue.save()
    return issue


@transaction.atomic
def automation_activate(*, automation: Automation) -> Automation:
    """Start (or resume) ``automation``: people enroll and move on. Needs a step."""
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    if not automation.steps.exists():
        raise ValidationError({"steps": "An automation needs a step before it starts."})
    automation.status = Automation.Status.ACTIVE
    automation.save(update_fields=["status", "updated_at"])
    run_soon()
    return automation


@transaction.atomic
def automation_pause(*, automation: Automation) -> Automation:
    """Hold everyone where they are: no step runs (an email batch stops within a
    quarter second) until ``automation_activate``; new people still enroll."""
    automation = Automation.objects.select_for_update().get(pk=automation.pk)
    if automation.status != Automation.Status.ACTIVE:
        raise ValidationError({"status": "Only an active automation can be paused."})
    automation.status = Automation.Status.PAUSED
    automation.save(update_fields=["status", "updated_at"])
    return automation


@transaction.atomic
def automation_delete(*, automation: Automation) -> None:
    """Delete ``automation``, its steps and enrollments; its hidden issues stay (their
    deliveries are the record of what was sent)."""
    automation.delete()


def enroll(*, automations: QuerySet[Automation], profile_ids: list[int]) -> int:
    """Enroll ``profile_ids`` in each of ``automations``; return how many start now.

    Someone already on their way is left there; someone whose way through it ended
    (finished, or left by unsubscribing) starts again from the first step, though
    an email step that reached them before is not sent again (one delivery per
    person and step). Queues one run of the engine when anyone starts. In the
    caller's transaction: a rolled-back subscribe enrolls nobody.
    """
    now = clock.now()
    created = 0
    for automation_id in automations.filter(status__in=ENROLLING).values_list("pk", flat=True):
        ended = Enrollment.objects.filter(
            automation_id=automation_id, profile_id__in=profile_ids
        ).exclude(status=Enrollment.Status.ACTIVE)
        ended_ids = list(ended.values_list("pk", flat=True))
        if ended_ids:
            StepRun.objects.filter(enrollment_id__in=ended_ids).delete()
            # Still ended: two beats restarting the same people restart them once.
            created += (
                Enrollment.objects.filter(pk__in=ended_ids)
                .exclude(status=Enrollment.Status.ACTIVE)
                .update(
                    status=Enrollment.Status.ACTIVE,
                    position=0,
                    attempts=0,
                    next_run_at=now,
                    exit_reason="",
                    ended_at=None,
                    claimed_by="",
                    claimed_at=None,
                )
            )
        created += enrollments_insert(
            automation_id=automation_id,
            profile_ids=profile_ids,
            next_run_at=now,
            enrolled_at=timezone.now(),
        )
    if created:
        run_soon()
    return created


def subscribed_automations(*, newsletter: Newsletter, source: str) -> list[int]:
    """The ids of ``newsletter``'s enrolling automations that a subscription from
    ``source`` starts."""
    automations = Automation.objects.filter(
        newsletter=newsletter, trigger=Automation.Trigger.SUBSCRIBED, status__in=ENROLLING
    ).values_list("pk", "trigger_sources")
    return [pk for pk, sources in automations if not sources or source in sources]


def enroll_subscribed(*, newsletter: Newsletter, profile_ids: list[int], source: str) -> int:
    """Enroll people whose subscription to ``newsletter`` became active from ``source``."""
    wanted = subscribed_automations(newsletter=newsletter, source=source)
    if not wanted:
        return 0
    return enroll(automations=Automation.objects.filter(pk__in=wanted), profile_ids=profile_ids)


def enroll_on_profile_change(*, trigger: str, values: list[str], profile_ids: list[int]) -> int:
    """Enroll people a change of tags or attributes ``values`` names, in each automation of
    a newsletter they are actively subscribed to."""
    automations = Automation.objects.filter(
        trigger=trigger, trigger_value__in=values, status__in=ENROLLING
    )
    created = 0
    for automation in automations:
        subscribed = list(
            Subscription.objects.filter(
                newsletter_id=automation.newsletter_id,
                profile_id__in=profile_ids,
                status=Subscription.Status.ACTIVE,
            ).values_list("profile_id", flat=True)
        )
        if subscribed:
            created += enroll(
                automations=Automation.objects.filter(pk=automation.pk), profile_ids=subscribed
            )
    return created


# How long after its moment a date still enrolls someone. A date that passed longer
# ago (before the automation was activated, or while no worker ran) enrolls nobody:
# activating "3 days before trial_end" does not email everyone whose trial ended.
DATE_GRACE = timedelta(days=1)
# People enrolled per statement (a date thousands share comes due at once).
_ENROLL_CHUNK = 1000


def enroll_date_reached(*, now: datetime | None = None) -> int:
    """Enroll everyone whose date attribute (moved by the offset) has passed, within
    ``DATE_GRACE``, in each enrolling ``date_reached`` automation; return how many.

    A query finds the next thousand due (``selectors.profiles_date_reached``), who are
    enrolled set-based in that same transaction, until nobody is left: a date 100,000
    people share takes 100 short transactions, not one long one. A person is enrolled
    once per value of the attribute: a new date enrolls them again once it is reached
    (if they are not on their way through it then), the same date never does.
    """
    now = now or clock.now()
    created = 0
    for automation in _dated_automations():
        while True:
            with transaction.atomic():
                due = list(
                    profiles_date_reached(
                        automation=automation, now=now, grace=DATE_GRACE, limit=_ENROLL_CHUNK
                    )
                )
                enrolled = _enroll_dated(automation, due) if due else 0
            created += enrolled
            # Everyone found is on their way now, so the next query finds the next ones.
            if len(due) < _ENROLL_CHUNK or not enrolled:
                break
    return created


def date_reached_soon(*, now: datetime | None = None) -> bool:
    """Queue ``tasks.automations_date_enroll`` (unless one waits already) when anyone's
    date was reached: one query per ``date_reached`` automation, which stops at the
    first person due. Returns whether anyone was. For the workers' beat, which must
    stay quick: the enrolling itself runs as a task."""
    from signalpost.automations.tasks import automations_date_enroll

    now = now or clock.now()
    for automation in _dated_automations():
        if profiles_date_reached(automation=automation, now=now, grace=DATE_GRACE).exists():
            waiting = DBTaskResult.objects.ready().filter(
                task_path=automations_date_enroll.module_path
            )
            if not waiting.exists():
                task_enqueue(automations_date_enroll)
            return True
    return False


def _dated_automations() -> QuerySet[Automation]:
    return Automation.objects.filter(trigger=Automation.Trigger.DATE_REACHED, status__in=ENROLLING)


def _enroll_dated(automation: Automation, due: list[tuple[int, str]]) -> int:
    created = enroll(
        automations=Automation.objects.filter(pk=automation.pk),
        profile_ids=[profile_id for profile_id, _ in due],
    )
    by_value: dict[str, list[int]] = defaultdict(list)
    for profile_id, value in due:
        by_value[value].append(profile_id)
    for value, profile_ids in by_value.items():
        Enrollment.objects.filter(automation=automation, profile_id__in=profile_ids).update(
            trigger_date=value
        )
    return created


@transaction.atomic
def enrollments_exit(
    *, profile_ids: list[int], reason: str, newsletter_id: int | None = None
) -> int:
    """End the active enrollments of ``profile_ids`` (in ``newsletter_id``'s automations, or
    all) with ``reason``; return how many. No step of theirs runs after this commits;
    ``enrollment_exited`` follows for each."""
    enrollments = Enrollment.objects.filter(profile_id__in=profile_ids)
    if newsletter_id is not None:
        enrollments = enrollments.filter(automation__newsletter_id=newsletter_id)
    return enrollments_end(enrollments, reason)


def enrollments_exit_tagged(*, tag: str, profile_ids: list[int]) -> int:
    """End the enrollments of the automations whose exit tag ``tag`` was put on people.

    The automations are looked up first: an import tags thousands of people a batch,
    and the lookup of their enrollments (thousands of ids) cost ~20 ms a tag and batch
    for tags that end no automation, the usual case (bench/README.md, # Import)."""
    automation_ids = list(Automation.objects.filter(exit_tag=tag).values_list("pk", flat=True))
    if not automation_ids:
        return 0
    enrollments = Enrollment.objects.filter(
        profile_id__in=profile_ids, automation_id__in=automation_ids
    )
    return enrollments_end(enrollments, f"tagged {tag}"[:100])


def run_soon() -> None:
    """Queue a run of the engine in the caller's transaction, unless one is waiting
    to run already: it will claim what this transaction made due.

    So 100,000 sign-ups in a minute queue a handful of runs, not 100,000. Should the
    waiting run start before this transaction commits, the workers' beat
    (``receivers.automations_wake``) queues the next within a quarter lease.
    """
    from signalpost.automations.tasks import automations_run

    if not DBTaskResult.objects.ready().filter(task_path=automations_run.module_path).exists():
        task_enqueue(automations_run)
