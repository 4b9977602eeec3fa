"""The task that runs automations: one per batch of due enrollments, not per person."""

from django.tasks import task

from signalpost.automations.engine import enrollments_claim, enrollments_run
from signalpost.automations.services import enroll_date_reached, run_soon
from signalpost.conf import conf


@task(takes_context=True)
def automations_run(context):
    """Claim a batch of due enrollments and run their steps (``engine``).

    A full batch queues the next run first (unless one waits already), so another
    worker takes the next batch meanwhile; the last, short batch queues nothing.
    Waits that end later are found by the workers' beat
    (``receivers.automations_wake``).
    """
    claimer = f"automations-{context.task_result.id}"
    # A first attempt holds no claims yet: only a rerun looks for its own.
    claimed = enrollments_claim(
        claimer=claimer, limit=conf.SEND_BATCH_SIZE, rerun=context.attempt > 1
    )
    if len(claimed) >= conf.SEND_BATCH_SIZE:
        run_soon()
    if not claimed:
        return {"claimed": 0}
    outcome = enrollments_run(claimer=claimer, enrollments=claimed)
    if outcome.steps or outcome.sent:
        # Some moved on to a step that is due now (after an email, say).
        run_soon()
    return {
        "claimed": outcome.claimed,
        "steps": outcome.steps,
        "sent": outcome.sent,
        "exited": outcome.exited,
        "finished": outcome.finished,
    }


@task
def automations_date_enroll():
    """Enroll the people whose date attribute was reached (``enroll_date_reached``):
    queued by the workers' beat when anyone is due, one task however many they are."""
    return {"enrolled": enroll_date_reached()}
