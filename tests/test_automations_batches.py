"""Automations at scale: the engine's bookkeeping costs the same for a batch of 20 or 60."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.automations import clock
from signalpost.automations.engine import enrollments_claim, enrollments_run
from signalpost.automations.models import Automation, Enrollment, StepRun
from signalpost.automations.services import automation_activate, automation_create, enroll
from signalpost.conf import conf
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
    # The wait's record; the email's is its delivery.
    assert StepRun.objects.filter(enrollment__automation=automation).count() == 60
    assert enrollments_claim(claimer="later", limit=60) == [], "nobody due before the day"


@pytest.mark.django_db(transaction=True)
def test_a_claim_takes_each_due_person_once_and_takes_back_a_lost_claim(monkeypatch):
    automation, profile_ids = two_steps_for(5)
    with transaction.atomic():
        enroll(automations=Automation.objects.filter(pk=automation.pk), profile_ids=profile_ids)
    with CaptureQueriesContext(connection) as claiming:
        first = enrollments_claim(claimer="one", limit=3, rerun=False)
    assert len(bookkeeping(claiming.captured_queries)) == 1, "claimed and read in one statement"
    second = enrollments_claim(claimer="two", limit=10, rerun=False)
    assert [e.claimed_by for e in first + second] == ["one"] * 3 + ["two"] * 2
    assert {e.profile_id for e in first + second} == set(profile_ids), "each person once"
    assert enrollments_claim(claimer="three", limit=10, rerun=False) == []
    # A rerun of "one" (its worker died) gets its own claims back.
    assert [e.pk for e in enrollments_claim(claimer="one", limit=10)] == [e.pk for e in first]

    lease = conf.WORKER_LEASE_SECONDS
    later = timezone.now() + timedelta(seconds=2 * lease + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    taken_back = enrollments_claim(claimer="four", limit=10, rerun=False)
    assert sorted(e.pk for e in taken_back) == sorted(e.pk for e in first + second)
    assert set(Enrollment.objects.values_list("claimed_by", flat=True)) == {"four"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings are PostgreSQL's")
@pytest.mark.django_db
def test_the_claims_planner_settings_end_with_their_statement():
    """The claim and the move steer PostgreSQL's planner for their own statement only: the
    rest of the caller's transaction plans as the session says."""
    from signalpost.automations.writes import enrollments_claim_due, enrollments_move

    def setting(name):
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            return cursor.fetchone()[0]

    now = timezone.now()
    with transaction.atomic():
        enrollments_claim_due(claimer="w", now=now, lost_before=now, limit=10)
        enrollments_move(ids=[1, 2], attempts=0)
        assert [setting(name) for name in ("enable_bitmapscan", "enable_sort")] == ["on", "on"]
        assert setting("enable_seqscan") == "on"
