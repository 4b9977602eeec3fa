"""Automations at scale: the engine's bookkeeping costs the same for a batch of 20 or 60."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from signalpost.accounts.models import Profile
from signalpost.automations.engine import enrollments_claim, enrollments_run
from signalpost.automations.models import Automation, Enrollment, StepRun
from signalpost.automations.services import automation_activate, automation_create, enroll
from signalpost.newsletters.models import Subscription
from tests.factories import make_newsletter

DAY = 24 * 3600
# The statements of the engine's own records: who is where, and which step ran.
BOOKKEEPING = ("automations_enrollment", "automations_steprun")


def two_steps_for(people):
    """A newsletter of ``people`` subscribers and an active email, day's wait, email."""
    letter = make_newsletter(slug=f"batch-{people}")
    profiles = Profile.objects.bulk_create(
        [Profile(email=f"reader{number}@{people}.example.com") for number in range(people)]
    )
    Subscription.objects.bulk_create(
        [Subscription(profile=p, newsletter=letter, status="active") for p in profiles]
    )
    automation = automation_create(
        newsletter=letter,
        name="Two steps",
        trigger="subscribed",
        steps=[
            {"kind": "email", "config": {"subject": "One", "body_markdown": "Hello."}},
            {"kind": "wait", "config": {"seconds": DAY}},
            {"kind": "email", "config": {"subject": "Two", "body_markdown": "Again."}},
        ],
    )
    automation_activate(automation=automation)
    return automation, [profile.pk for profile in profiles]


def bookkeeping(queries):
    return [q["sql"] for q in queries if any(table in q["sql"] for table in BOOKKEEPING)]


def enroll_and_run_once(people, settings):
    """Enroll ``people`` at once and run one batch of them; the bookkeeping statements
    of each."""
    settings.SIGNALPOST_SEND_BATCH_SIZE = people
    automation, profile_ids = two_steps_for(people)
    with CaptureQueriesContext(connection) as enrolling, transaction.atomic():
        enroll(automations=Automation.objects.filter(pk=automation.pk), profile_ids=profile_ids)
    with CaptureQueriesContext(connection) as running:
        claimed = enrollments_claim(claimer=f"test-{people}", limit=people)
        enrollments_run(claimer=f"test-{people}", enrollments=claimed)
    assert len(claimed) == people
    return (
        automation,
        bookkeeping(enrolling.captured_queries),
        bookkeeping(running.captured_queries),
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_costs_the_engine_as_many_statements_for_60_people_as_for_20(smtp_inbox, settings):
    small = enroll_and_run_once(20, settings)
    large = enroll_and_run_once(60, settings)
    assert len(large[1]) == len(small[1]), "enrolling: statements per chunk, not per person"
    assert len(large[2]) == len(small[2]), "running: statements per batch, not per person"
    automation = large[0]
    smtp_inbox.wait_for(20 + 60)
    # One run sent the first email and started everyone's wait: nothing left for another.
    enrollments = Enrollment.objects.filter(automation=automation)
    assert set(enrollments.values_list("status", "position", "claimed_by")) == {("active", 2, "")}
    assert StepRun.objects.filter(enrollment__automation=automation).count() == 2 * 60
    assert enrollments_claim(claimer="later", limit=60) == [], "nobody due before the day"
