"""Running automations set-based: claim the due enrollments in batches, run their steps.

One ``automations_run`` task claims up to ``AUTOMATION_BATCH_SIZE`` due
enrollments in one transaction (SKIP LOCKED on PostgreSQL, so workers never
wait for each other), runs each person's steps up to a wait or an email, and
sends each email step's messages of the batch over one SMTP connection through
the issue fan-out (``publishing.tasks.deliveries_send``): a Delivery per person
and step (unique), marked sending before DATA and sent right after, so a
worker killed mid-step sends at most the one message in flight again.
"""

import functools
import logging
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet, prefetch_related_objects

from signalpost.accounts.models import Profile
from signalpost.accounts.services import profile_attributes_update, profile_tags_set
from signalpost.automations import clock
from signalpost.automations.models import Automation, Enrollment, Step, StepRun
from signalpost.automations.writes import (
    enrollments_claim_due,
    enrollments_move,
    step_runs_insert,
)
from signalpost.conf import conf
from signalpost.durability import asynchronous_commit
from signalpost.durable.exceptions import PermanentFailure
from signalpost.engagement.models import Engagement, Kind
from signalpost.newsletters import emails
from signalpost.newsletters.models import Subscription
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import retry_at
from signalpost.publishing.tasks import deliveries_send
from signalpost.publishing.writes import deliveries_insert_for
from signalpost.signals import automation_step_sent, automation_step_webhook, enrollment_exited

logger = logging.getLogger(__name__)

# A delivery in one of these is the email step's record for its person: the step ran.
_FINAL = set(Delivery.FINAL_STATUSES)
# Subscription states that end an enrollment, and the reason recorded.
_EXIT_REASONS: dict[str | None, str] = {
    Subscription.Status.UNSUBSCRIBED: "unsubscribed",
    Subscription.Status.BOUNCED: "bounced",
    Subscription.Status.COMPLAINED: "complained",
    Subscription.Status.PENDING: "unsubscribed",
}


@dataclass
class RunOutcome:
    claimed: int = 0
    steps: int = 0
    sent: int = 0
    exited: int = 0
    finished: int = 0
    by_email: dict[int, list[Enrollment]] = field(default_factory=dict)
    by_welcome: dict[int, list[Enrollment]] = field(default_factory=dict)
    by_wait: dict[int, list[Enrollment]] = field(default_factory=dict)
    # Reached the end: ended together once the batch is through.
    finishing: list[Enrollment] = field(default_factory=list)


@transaction.atomic
def enrollments_claim(*, claimer: str, limit: int, rerun: bool = True) -> list[Enrollment]:
    """Claim up to ``limit`` due enrollments of active automations for ``claimer``;
    return them, oldest id first.

    A claimer that ran before (``rerun``: its task rerun after its worker died) gets
    its own unfinished claims back first; a claim older than the worker lease is
    taken for lost. Other workers' rows being claimed are skipped (SKIP LOCKED).
    A first run has no claims of its own to look for (that look reads the whole
    table: no index holds ``claimed_by``). The claim is one statement that also
    reads the rows (``writes.enrollments_claim_due``).
    """
    now = clock.now()
    if rerun:
        own = list(
            Enrollment.objects.filter(claimed_by=claimer, status=Enrollment.Status.ACTIVE).order_by(
                "id"
            )[:limit]
        )
        if own:
            return own
    lost = now - timedelta(seconds=conf.WORKER_LEASE_SECONDS * 2)
    return enrollments_claim_due(claimer=claimer, now=now, lost_before=lost, limit=limit)


def enrollments_run(*, claimer: str, enrollments: list[Enrollment]) -> RunOutcome:
    """Run the steps of ``enrollments``, claimed by ``claimer`` (``enrollments_claim``);
    release them; return the counts.

    They are taken as claimed, not read again: someone who left since is found by
    the subscription check every run makes before any step (``_leaving``).
    """
    outcome = RunOutcome(claimed=len(enrollments))
    # A batch holds a few automations: each read once, not joined into every row.
    automations = Automation.objects.select_related("newsletter").in_bulk(
        {enrollment.automation_id for enrollment in enrollments}
    )
    for enrollment in enrollments:
        enrollment.automation = automations[enrollment.automation_id]
    steps = _steps_of({enrollment.automation_id for enrollment in enrollments})
    staying = _exit_leaving(enrollments, outcome)
    _profiles_read(staying, steps)
    for enrollment in staying:
        _walk(enrollment, steps[enrollment.automation_id], outcome)
    by_id = {step.pk: step for listed in steps.values() for step in listed}
    for step_id, group in outcome.by_email.items():
        step = by_id[step_id]
        following = _step_due(steps[step.automation_id], step.position + 1)
        outcome.sent += _email_send(
            step=step, enrollments=group, claimer=claimer, outcome=outcome, following=following
        )
    for step_id, group in outcome.by_welcome.items():
        outcome.sent += _welcome_send(step=by_id[step_id], enrollments=group)
    for step_id, group in outcome.by_wait.items():
        _waits_start(by_id[step_id], group)
        outcome.steps += len(group)
    _end_all(outcome.finishing, status=Enrollment.Status.FINISHED, reason="")
    outcome.finished += len(outcome.finishing)
    # Those a wait released (``_waits_start``, after most emails) hold no claim any more.
    held = [enrollment.pk for enrollment in enrollments if enrollment.claimed_by]
    if held:
        Enrollment.objects.filter(id__in=held, claimed_by=claimer).update(
            claimed_by="", claimed_at=None
        )
    return outcome


def _step_due(steps: list[Step], position: int) -> Step | None:
    """The step an enrollment at ``position`` runs next: the first at or after it."""
    return next((step for step in steps if step.position >= position), None)


def _exit_leaving(enrollments: list[Enrollment], outcome: RunOutcome) -> list[Enrollment]:
    """End the enrollments of people who must leave (``_leaving``), one UPDATE per
    reason; return those who stay."""
    leaving = _leaving(enrollments)
    by_reason: dict[str, list[Enrollment]] = {}
    for enrollment in enrollments:
        if enrollment.pk in leaving:
            by_reason.setdefault(leaving[enrollment.pk], []).append(enrollment)
    for reason, group in by_reason.items():
        outcome.exited += enrollments_end(
            Enrollment.objects.filter(pk__in=[enrollment.pk for enrollment in group]), reason
        )
    return [enrollment for enrollment in enrollments if enrollment.pk not in leaving]


def _profiles_read(enrollments: list[Enrollment], steps: dict[int, list[Step]]) -> None:
    """Read, in one query, the profiles of those whose next step needs one: a tag, an
    attribute, a webhook, a branch or a wait until a weekday in their time zone."""
    needing = [
        enrollment
        for enrollment in enrollments
        if _needs_profile(_step_due(steps[enrollment.automation_id], enrollment.position))
    ]
    if needing:
        prefetch_related_objects(needing, "profile")


def _needs_profile(step: Step | None) -> bool:
    if step is None or step.kind in (Step.Kind.EMAIL, Step.Kind.WELCOME):
        return False
    return not (step.kind == Step.Kind.WAIT and "seconds" in step.config)


def _steps_of(automation_ids: set[int]) -> dict[int, list[Step]]:
    steps: dict[int, list[Step]] = {pk: [] for pk in automation_ids}
    for step in Step.objects.filter(automation_id__in=automation_ids).select_related(
        "issue__newsletter"
    ):
        steps[step.automation_id].append(step)
    for listed in steps.values():
        listed.sort(key=lambda step: step.position)
    return steps


def _leaving(enrollments: list[Enrollment]) -> dict[int, str]:
    """Who must leave at claim time: not actively subscribed any more, or exit-tagged."""
    if not enrollments:
        return {}
    statuses = {
        (profile_id, newsletter_id): status
        for profile_id, newsletter_id, status in Subscription.objects.filter(
            profile_id__in={e.profile_id for e in enrollments},
            newsletter_id__in={e.automation.newsletter_id for e in enrollments},
        ).values_list("profile_id", "newsletter_id", "status")
    }
    exit_tags = {e.automation.exit_tag for e in enrollments if e.automation.exit_tag}
    tagged = set()
    if exit_tags:
        tagged = set(
            Profile.tags.through.objects.filter(
                profile_id__in={e.profile_id for e in enrollments}, tag__name__in=exit_tags
            ).values_list("profile_id", "tag__name")
        )
    leaving = {}
    for enrollment in enrollments:
        status = statuses.get((enrollment.profile_id, enrollment.automation.newsletter_id))
        if status != Subscription.Status.ACTIVE:
            leaving[enrollment.pk] = _EXIT_REASONS.get(status, "unsubscribed")
        elif (enrollment.profile_id, enrollment.automation.exit_tag) in tagged:
            leaving[enrollment.pk] = f"tagged {enrollment.automation.exit_tag}"[:100]
    return leaving


def _end_all(enrollments: list[Enrollment], *, status: str, reason: str) -> None:
    if not enrollments:
        return
    Enrollment.objects.filter(
        pk__in=[enrollment.pk for enrollment in enrollments], status=Enrollment.Status.ACTIVE
    ).update(status=status, exit_reason=reason, ended_at=clock.now(), next_run_at=None)


@transaction.atomic
def enrollments_end(found: QuerySet[Enrollment], reason: str) -> int:
    """Exit the active enrollments among ``found`` with ``reason``: no step of theirs
    runs after this commits. Sends ``enrollment_exited`` once for each; returns how many.

    Every way out goes through here (unsubscribe, bounce, complaint, exit tag, or a
    claim that finds the person gone): rows another exit ended first are left alone.
    """
    ending = list(
        found.filter(status=Enrollment.Status.ACTIVE)
        .select_related("automation__newsletter", "profile")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    if not ending:
        return 0
    now = clock.now()
    Enrollment.objects.filter(
        pk__in=[enrollment.pk for enrollment in ending], status=Enrollment.Status.ACTIVE
    ).update(status=Enrollment.Status.EXITED, exit_reason=reason, ended_at=now, next_run_at=None)
    for enrollment in ending:
        enrollment.status, enrollment.exit_reason = Enrollment.Status.EXITED, reason
        enrollment.ended_at, enrollment.next_run_at = now, None
        enrollment_exited.send(
            sender=Enrollment,
            enrollment=enrollment,
            automation=enrollment.automation,
            profile=enrollment.profile,
            reason=reason,
        )
    return len(ending)


def _walk(enrollment: Enrollment, steps: list[Step], outcome: RunOutcome) -> None:
    """Run ``enrollment``'s steps from its position until a wait, an email or the end.

    Tags, attributes, webhooks and branches run here, one person at a time; waits,
    emails and the end are left in ``outcome``, for the whole batch at once.
    """
    while True:
        step = _step_due(steps, enrollment.position)
        if step is None:
            outcome.finishing.append(enrollment)
            return
        waiting: dict[str, dict[int, list[Enrollment]]] = {
            Step.Kind.EMAIL: outcome.by_email,
            Step.Kind.WELCOME: outcome.by_welcome,
            Step.Kind.WAIT: outcome.by_wait,
        }
        if step.kind in waiting:
            waiting[step.kind].setdefault(step.pk, []).append(enrollment)
            return
        with transaction.atomic():
            ran = _step_record(enrollment, step)
            goto = step.position + 1
            if step.kind == Step.Kind.BRANCH:
                if _condition_holds(step.config["if"], enrollment=enrollment, steps=steps):
                    goto = step.config["goto"]
            elif ran:
                _step_effect(step, enrollment)
            still_in = _move(enrollment, position=goto, next_run_at=clock.now())
        outcome.steps += 1
        if not still_in:
            return


def _waits_start(
    step: Step,
    enrollments: list[Enrollment],
    *,
    emailed: Step | None = None,
    sent_profile_ids: list[int] | None = None,
) -> None:
    """Start wait ``step`` for ``enrollments``: record it, make each due when it ends
    (the same moment for a wait of N seconds: one UPDATE) and release it, in one
    transaction: the batch's release has nothing left to write for them.

    ``emailed``: the email step just before, whose delivery is final for them (the
    delivery is that step's record: ``_steps_done`` without its move), and
    ``automation_step_sent`` goes for ``sent_profile_ids`` in the same transaction:
    each enrollment is written once for both steps, not twice.
    """
    now = clock.now()
    by_end: dict[datetime, list[int]] = {}
    for enrollment in enrollments:
        profile = None if "seconds" in step.config else enrollment.profile
        end = wait_end(step.config, profile=profile, now=now)
        by_end.setdefault(end, []).append(enrollment.pk)
    ids = [enrollment.pk for enrollment in enrollments]
    with transaction.atomic():
        if emailed is not None:
            _step_sent_announce(emailed, enrollments[0].automation, sent_profile_ids or [])
        step_runs_insert(step=step, enrollment_ids=ids, ran_at=now)
        for end, ending_then in by_end.items():
            enrollments_move(
                ids=ending_then,
                position=step.position + 1,
                next_run_at=end,
                attempts=0,
                claimed_by="",
                claimed_at=None,
            )
    for enrollment in enrollments:
        enrollment.position, enrollment.attempts = step.position + 1, 0
        enrollment.claimed_by, enrollment.claimed_at = "", None


def _step_record(enrollment: Enrollment, step: Step, outcome: str = "done") -> bool:
    """Record that ``step`` ran for ``enrollment``; return False if it had already."""
    try:
        with transaction.atomic():
            StepRun.objects.create(
                enrollment=enrollment,
                step=step,
                position=step.position,
                kind=step.kind,
                outcome=outcome,
            )
    except IntegrityError:
        return False
    return True


def _move(enrollment: Enrollment, *, position: int, next_run_at: datetime) -> bool:
    """Set the next step and when it is due; a new step starts with no failed try.

    Returns False when the enrollment ended meanwhile (the step's own tag was its
    exit tag, say): nothing more runs for it.
    """
    fields: dict[str, Any] = {"position": position, "next_run_at": next_run_at}
    if position != enrollment.position:
        fields["attempts"] = 0
    enrollment.position, enrollment.next_run_at = position, next_run_at
    return bool(
        Enrollment.objects.filter(pk=enrollment.pk, status=Enrollment.Status.ACTIVE).update(
            **fields
        )
    )


def _step_effect(step: Step, enrollment: Enrollment) -> None:
    profile = enrollment.profile
    config = step.config
    if step.kind in (Step.Kind.TAG_ADD, Step.Kind.TAG_REMOVE):
        names = set(profile.tags.values_list("name", flat=True))
        if step.kind == Step.Kind.TAG_ADD:
            names.add(config["tag"])
        else:
            names.discard(config["tag"])
        profile_tags_set(profile=profile, names=sorted(names), source="service")
    elif step.kind == Step.Kind.SET_ATTRIBUTE:
        profile_attributes_update(
            profile=profile, values={config["key"]: config["value"]}, source="service"
        )
    elif step.kind == Step.Kind.WEBHOOK:
        automation_step_webhook.send(
            sender=Automation,
            automation_id=enrollment.automation_id,
            automation_name=enrollment.automation.name,
            newsletter=enrollment.automation.newsletter,
            profile=profile,
            user_email=profile.email,
            event=config.get("event", ""),
        )


def _condition_holds(condition: dict[str, Any], *, enrollment: Enrollment, steps: list) -> bool:
    if "has_tag" in condition:
        return enrollment.profile.tags.filter(name=condition["has_tag"]).exists()
    email = next((s for s in steps if s.position == condition["clicked"]), None)
    if email is None or email.issue_id is None:
        return False
    return Engagement.objects.filter(
        issue_id=email.issue_id, kind=Kind.CLICK, is_human=True, profile_id=enrollment.profile_id
    ).exists()


def wait_end(config: dict[str, Any], *, profile: Profile | None, now: datetime) -> datetime:
    """When a wait step that starts at ``now`` ends for ``profile``.

    ``{"seconds": N}``: N seconds later (the profile is not needed). ``{"weekday",
    "time"}``: the next such moment (never now) in the person's ``time_zone``
    attribute, else UTC.
    """
    if "seconds" in config:
        return now + timedelta(seconds=config["seconds"])
    attributes = (profile.attributes if profile is not None else None) or {}
    zone: zoneinfo.ZoneInfo | Any
    try:
        zone = zoneinfo.ZoneInfo(str(attributes.get("time_zone") or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in config["time"].split(":"))
    days = (config["weekday"] - local.weekday()) % 7
    candidate = datetime.combine(
        local.date() + timedelta(days=days), time(hour, minute), tzinfo=zone
    )
    if candidate <= local:
        candidate += timedelta(days=7)
    return candidate


def _email_send(
    *,
    step: Step,
    enrollments: list[Enrollment],
    claimer: str,
    outcome: RunOutcome,
    following: Step | None,
) -> int:
    """Send ``step``'s email to ``enrollments`` over one SMTP connection; move each on.

    Each person has one Delivery of the step's hidden issue (unique): one already
    final from an earlier run is not sent again. When the step ``following`` is a
    wait, those whose delivery is final start it with the batch (unless the
    automation was paused meanwhile): no run claims and reads them again for it.
    Returns how many were sent.
    """
    issue = step.issue
    assert issue is not None
    automation_id = step.automation_id

    def halted() -> bool:
        status = Automation.objects.filter(pk=automation_id).values_list("status", flat=True)
        return status.first() != Automation.Status.ACTIVE

    by_profile = {enrollment.profile_id: enrollment for enrollment in enrollments}
    deliveries_insert_for(issue_id=issue.pk, profile_ids=list(by_profile))
    with transaction.atomic():
        # Ours alone: the enrollments are claimed by us, so a delivery still marked
        # sending belongs to a run that died (its one message in flight may go again).
        Delivery.objects.filter(
            issue=issue,
            profile_id__in=by_profile,
            status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING],
        ).update(status=Delivery.Status.SENDING, claimed_by=claimer, attempts=F("attempts") + 1)
    # With their profiles, as an issue's batch reads its deliveries.
    deliveries = list(
        Delivery.objects.filter(
            issue=issue, profile_id__in=by_profile, status=Delivery.Status.SENDING
        )
        .select_related("profile")
        .order_by("id")
    )
    for delivery in deliveries:
        delivery.issue = issue
    sent = 0
    stopped = False
    if deliveries:
        with asynchronous_commit():
            result = deliveries_send(issue=issue, deliveries=deliveries, halted=halted)
        sent, stopped = result["sent"], result["halted"]
        if result["sender_refused"] or stopped:
            Delivery.objects.filter(
                issue=issue, claimed_by=claimer, status=Delivery.Status.SENDING
            ).update(status=Delivery.Status.QUEUED, claimed_by="")
    statuses = dict(
        Delivery.objects.filter(issue=issue, profile_id__in=by_profile).values_list(
            "profile_id", "status"
        )
    )
    done = {
        profile_id: enrollment
        for profile_id, enrollment in by_profile.items()
        if statuses.get(profile_id) in _FINAL
    }
    sent_now = [
        delivery.profile_id
        for delivery in deliveries
        if delivery.profile_id is not None
        and statuses.get(delivery.profile_id) == Delivery.Status.SENT
    ]
    wait = following if following is not None and following.kind == Step.Kind.WAIT else None
    if done and wait is not None and not stopped and not halted():
        if "seconds" not in wait.config:
            # A wait until a weekday and time: in each person's time zone.
            prefetch_related_objects(list(done.values()), "profile")
        _waits_start(wait, list(done.values()), emailed=step, sent_profile_ids=sent_now)
        outcome.steps += len(done)
    else:
        _steps_done(step, done=done, sent_profile_ids=sent_now)
    for profile_id, enrollment in by_profile.items():
        status = statuses.get(profile_id)
        if status in _FINAL:
            continue
        if stopped:
            # Paused mid-batch: due again as soon as the automation is resumed.
            _move(enrollment, position=step.position, next_run_at=clock.now())
        else:
            attempts = Delivery.objects.filter(issue=issue, profile_id=profile_id).values_list(
                "attempts", flat=True
            )
            _move(
                enrollment,
                position=step.position,
                next_run_at=retry_at(max(attempts.first() or 1, 1)),
            )
    return sent


def _steps_done(step: Step, *, done: dict[int, Enrollment], sent_profile_ids: list[int]) -> None:
    """Move the enrollments ``done`` (by profile id), whose delivery of email ``step``
    is final, on to the next step, due now; send ``automation_step_sent`` for
    ``sent_profile_ids``, whose message this batch sent.

    The step needs no record of its own: the person's Delivery of the step's issue
    (unique, final) is it, with its status and time (``selectors.automation_funnel``
    counts it). Set-based, in one transaction: one UPDATE for the batch, not a
    commit per person (what held a step's emails to a third of the fan-out's rate).
    """
    if not done:
        return
    now = clock.now()
    ids = [enrollment.pk for enrollment in done.values()]
    with transaction.atomic():
        enrollments_move(ids=ids, position=step.position + 1, next_run_at=now, attempts=0)
        _step_sent_announce(
            step,
            next(iter(done.values())).automation,
            sent_profile_ids,
        )
    for enrollment in done.values():
        enrollment.position, enrollment.next_run_at = step.position + 1, now


def _step_sent_announce(step: Step, automation: Automation, profile_ids: list[int]) -> None:
    """``automation_step_sent`` for a batch: once per step, listing whom it reached."""
    if profile_ids:
        automation_step_sent.send(
            sender=Automation, automation=automation, step=step, profile_ids=profile_ids
        )


def _welcome_send(*, step: Step, enrollments: list[Enrollment]) -> int:
    """Send the newsletter's welcome email (``newsletters.emails``) to ``enrollments``.

    The step is recorded before the message goes (a worker killed between the two
    sends nothing: at most once); a message the server did not take is tried again
    later, up to ``SEND_MAX_ATTEMPTS`` times, then the step is recorded failed.
    """
    newsletter_id = enrollments[0].automation.newsletter_id
    subscriptions = {
        subscription.profile_id: subscription
        for subscription in Subscription.objects.filter(
            newsletter_id=newsletter_id,
            profile_id__in=[enrollment.profile_id for enrollment in enrollments],
            status=Subscription.Status.ACTIVE,
        ).select_related("profile", "newsletter")
    }
    builders = {}
    by_key = {}
    for enrollment in enrollments:
        subscription = subscriptions.get(enrollment.profile_id)
        key = f"automation-{step.pk}-enrollment-{enrollment.pk}"
        if subscription is None or not _step_record(enrollment, step, outcome="sending"):
            # Left meanwhile, or sent by a run that died after recording it.
            _move(enrollment, position=step.position + 1, next_run_at=clock.now())
            continue
        builders[key] = functools.partial(
            emails.welcome_message, subscription=subscription, idempotency_key=key
        )
        by_key[key] = enrollment
    failures = emails.emails_send(builders) if builders else {}
    for key, enrollment in by_key.items():
        error = failures.get(key)
        run = StepRun.objects.filter(enrollment=enrollment, step=step)
        tries = enrollment.attempts + 1
        if error is None or tries >= conf.SEND_MAX_ATTEMPTS or isinstance(error, PermanentFailure):
            if error is not None:
                logger.warning("The welcome of enrollment %s failed: %s", enrollment.pk, error)
            run.update(outcome=Delivery.Status.SENT if error is None else Delivery.Status.FAILED)
            _move(enrollment, position=step.position + 1, next_run_at=clock.now())
            continue
        run.delete()
        Enrollment.objects.filter(pk=enrollment.pk).update(attempts=tries)
        _move(enrollment, position=step.position, next_run_at=retry_at(tries))
    with transaction.atomic():
        _step_sent_announce(
            step,
            enrollments[0].automation,
            [enrollment.profile_id for key, enrollment in by_key.items() if key not in failures],
        )
    return len(by_key) - len(failures)
