"""The "date attribute reached" trigger: who is enrolled, when, and how often."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.fields.json import KeyTextTransform

from signalpost.accounts.models import Profile
from signalpost.accounts.services import profile_attributes_update
from signalpost.automations import clock
from signalpost.automations.dates import DateDue, date_due
from signalpost.automations.models import Automation, Enrollment
from signalpost.automations.selectors import automation_funnel
from signalpost.automations.services import (
    automation_activate,
    automation_create,
    automation_pause,
    enroll_date_reached,
)
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from tests.factories import make_profile
from tests.recorders import SignalRecorder

DAY = 24 * 3600
NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)

# Each value, with the moment it names for someone in Tokyo (UTC+9); None: no date.
SAMPLES = [
    ("2026-12-10", datetime(2026, 12, 9, 15, 0, tzinfo=UTC)),
    ("2026-12-10T09:30", datetime(2026, 12, 10, 0, 30, tzinfo=UTC)),
    ("2026-12-10 09:30:15", datetime(2026, 12, 10, 0, 30, 15, tzinfo=UTC)),
    ("2026-12-10T09:30:15.123456", datetime(2026, 12, 10, 0, 30, 15, tzinfo=UTC)),
    ("2026-12-10T09:30:00Z", datetime(2026, 12, 10, 9, 30, tzinfo=UTC)),
    ("2026-12-10T09:30:00+01:00", datetime(2026, 12, 10, 8, 30, tzinfo=UTC)),
    ("2026-12-10T09:30-05:30", datetime(2026, 12, 10, 15, 0, tzinfo=UTC)),
    ("2028-02-29", datetime(2028, 2, 28, 15, 0, tzinfo=UTC)),
    ("2026-02-29", None),
    ("2026-02-30", None),
    ("2026-04-31", None),
    ("2026-13-01", None),
    ("2026-12-10T24:00", None),
    ("2026-12-10T09:60", None),
    ("2026-12-10T09:30+24:00", None),
    ("0999-01-01", None),
    ("3000-01-01", None),
    ("10/12/2026", None),
    ("2026-12-10\n", None),
    ("2026-12-10 ", None),
    (" 2026-12-10", None),
    ("2026-12-1", None),
    ("\uff12\uff10\uff12\uff16-12-10", None),  # full-width digits
    ("2026-12-10T09", None),
    ("tomorrow", None),
    ("", None),
    ("'; DROP TABLE accounts_profile; --", None),
    ("2026-12-10" + "0" * 500, None),
]


@pytest.mark.parametrize(("value", "moment"), SAMPLES)
def test_the_accepted_date_forms_name_these_moments(value, moment):
    assert date_due(value, "Asia/Tokyo") == moment


def test_a_date_alone_is_midnight_in_the_persons_time_zone_else_utc():
    assert date_due("2026-12-10", "Europe/Paris") == datetime(2026, 12, 9, 23, 0, tzinfo=UTC)
    assert date_due("2026-07-10", "Europe/Paris") == datetime(2026, 7, 9, 22, 0, tzinfo=UTC)
    for unknown in (None, "", "Mars/Olympus", "../../etc/passwd", 7):
        assert date_due("2026-12-10", unknown) == datetime(2026, 12, 10, tzinfo=UTC)
    assert date_due(20261210, "UTC") is None, "a number is no date"


@pytest.mark.django_db
def test_the_database_finds_the_same_moment_as_python_for_every_value():
    """The workers' query (``DateDue``) and ``date_due`` agree, on this database."""
    zones = ["Asia/Tokyo", "America/New_York", "Mars/Olympus", None, 5]
    values = [value for value, _ in SAMPLES] + [20261210, True, None]
    expected = {}
    for number, (value, zone) in enumerate((v, z) for v in values for z in zones):
        attributes = {"trial_end": value, "time_zone": zone}
        profile = make_profile(email=f"p{number}@example.com", attributes=attributes)
        expected[profile.pk] = date_due(value, zone)
    found = dict(
        Profile.objects.annotate(
            due=DateDue(
                KeyTextTransform("trial_end", "attributes"),
                KeyTextTransform("time_zone", "attributes"),
            )
        ).values_list("pk", "due")
    )
    assert found == expected


@pytest.fixture
def at(monkeypatch):
    """Automations' clock, set to ``at.time`` (``at.move(seconds)`` moves it)."""

    class At:
        time = NOW

        def move(self, seconds):
            self.time += timedelta(seconds=seconds)

    moment = At()
    monkeypatch.setattr(clock, "now", lambda: moment.time)
    return moment


def trial_reminder(newsletter, *, offset=-3 * DAY, activate=True):
    automation = automation_create(
        newsletter=newsletter,
        name="Trial ends",
        trigger="date_reached",
        trigger_value="trial_end",
        trigger_offset_seconds=offset,
        steps=[{"kind": "tag_add", "config": {"tag": "reminded"}}],
    )
    return automation_activate(automation=automation) if activate else automation


def subscriber(newsletter, email, **attributes):
    profile = subscribe(email=email, newsletter=newsletter, source="admin").profile
    if attributes:
        profile_attributes_update(profile=profile, values=attributes, source="service")
    return profile


def enrolled(automation):
    return set(
        Enrollment.objects.filter(automation=automation).values_list("profile__email", flat=True)
    )


@pytest.mark.django_db
def test_a_person_is_enrolled_once_their_date_less_the_offset_has_passed(newsletter, at):
    automation = trial_reminder(newsletter)
    subscriber(newsletter, "ann@example.com", trial_end="2026-12-14")
    subscriber(newsletter, "bob@example.com", trial_end="2026-12-20")
    subscriber(newsletter, "cy@example.com")

    assert enroll_date_reached() == 0, "three days before the 14th is the 11th"
    at.move(DAY)
    assert enroll_date_reached() == 1
    assert enrolled(automation) == {"ann@example.com"}
    assert Enrollment.objects.get(automation=automation).trigger_date == "2026-12-14"
    assert enroll_date_reached() == 0, "once"


@pytest.mark.django_db
def test_a_date_only_day_starts_at_midnight_where_the_person_lives(newsletter, at):
    automation = trial_reminder(newsletter, offset=0)
    subscriber(newsletter, "tokyo@example.com", trial_end="2026-12-11", time_zone="Asia/Tokyo")
    subscriber(newsletter, "ny@example.com", trial_end="2026-12-11", time_zone="America/New_York")
    assert enroll_date_reached() == 0, "21:00 on the 10th in Tokyo"
    at.move(4 * 3600)  # 16:00 UTC: the 11th in Tokyo, 11:00 on the 10th in New York.
    enroll_date_reached()
    assert enrolled(automation) == {"tokyo@example.com"}


@pytest.mark.django_db
def test_dates_long_past_when_the_automation_starts_enroll_nobody(newsletter, at):
    subscriber(newsletter, "old@example.com", trial_end="2026-12-01")
    subscriber(newsletter, "recent@example.com", trial_end="2026-12-13T06:00:00Z")
    automation = trial_reminder(newsletter)
    enroll_date_reached()
    assert enrolled(automation) == {"recent@example.com"}, "within the day's grace only"


@pytest.mark.django_db
def test_a_new_date_enrolls_again_and_the_same_date_never(newsletter, at):
    automation = trial_reminder(newsletter, offset=0)
    ann = subscriber(newsletter, "ann@example.com", trial_end="2026-12-10T08:00:00Z")
    enroll_date_reached()
    Enrollment.objects.filter(automation=automation).update(status="finished")

    profile_attributes_update(profile=ann, values={"time_zone": "Asia/Tokyo"}, source="api")
    assert enroll_date_reached() == 0, "the same date, whatever else changed"
    profile_attributes_update(
        profile=ann, values={"trial_end": "2026-12-17T08:00:00Z"}, source="api"
    )
    assert enroll_date_reached() == 0, "not before the new date"
    at.move(7 * DAY)
    assert enroll_date_reached() == 1
    enrollment = Enrollment.objects.get(automation=automation)
    assert (enrollment.status, enrollment.trigger_date) == ("active", "2026-12-17T08:00:00Z")


@pytest.mark.django_db
def test_someone_on_their_way_is_left_there_when_a_new_date_comes(newsletter, at):
    automation = trial_reminder(newsletter, offset=0)
    ann = subscriber(newsletter, "ann@example.com", trial_end="2026-12-10T08:00:00Z")
    enroll_date_reached()
    profile_attributes_update(
        profile=ann, values={"trial_end": "2026-12-10T10:00:00Z"}, source="api"
    )
    assert enroll_date_reached() == 0
    assert Enrollment.objects.get(automation=automation).trigger_date == "2026-12-10T08:00:00Z"


@pytest.mark.django_db
def test_values_that_are_no_date_are_skipped_and_counted(newsletter, at):
    automation = trial_reminder(newsletter, offset=0)
    subscriber(newsletter, "ok@example.com", trial_end="2026-12-10")
    subscriber(newsletter, "typo@example.com", trial_end="2026-02-30")
    subscriber(newsletter, "words@example.com", trial_end="next week")
    subscriber(newsletter, "number@example.com", trial_end=20261210)
    subscriber(newsletter, "unset@example.com", plan="trial")

    assert enroll_date_reached() == 1
    assert enroll_date_reached() == 0, "skipped again, quietly"
    assert enrolled(automation) == {"ok@example.com"}
    assert automation_funnel(automation=automation)["not_a_date"] == 3


@pytest.mark.django_db
def test_only_active_subscribers_of_the_newsletter_are_enrolled(newsletter, at):
    from tests.factories import make_newsletter

    automation = trial_reminder(newsletter, offset=0)
    subscriber(newsletter, "gone@example.com", trial_end="2026-12-10")
    unsubscribe(email="gone@example.com", newsletter=newsletter, reason="form")
    other = make_newsletter(slug="other")
    subscriber(other, "elsewhere@example.com", trial_end="2026-12-10")
    assert enroll_date_reached() == 0
    assert enrolled(automation) == set()


@pytest.mark.django_db
def test_a_draft_enrolls_nobody_and_a_paused_one_holds_who_it_enrolls(newsletter, at):
    draft = trial_reminder(newsletter, offset=0, activate=False)
    subscriber(newsletter, "ann@example.com", trial_end="2026-12-10")
    assert enroll_date_reached() == 0
    automation_activate(automation=draft)
    automation_pause(automation=draft)
    assert enroll_date_reached() == 1
    assert Automation.objects.get(pk=draft.pk).status == "paused"


@pytest.mark.django_db
def test_a_date_reached_starts_the_steps_and_announces_nothing_it_did_not_do(newsletter, at):
    from signalpost.signals import enrollment_exited

    trial_reminder(newsletter, offset=0)
    subscriber(newsletter, "ann@example.com", trial_end="2026-12-10")
    with SignalRecorder(enrollment_exited) as exits:
        enroll_date_reached()
    assert exits.calls == []


@pytest.mark.django_db
def test_the_scan_finds_exactly_whom_python_finds_due_at_the_edges_of_the_window(newsletter):
    """The scan looks only at days near the moment (``days_around``): dates at the far
    ends of the zones and offsets, an hour apart over six days, are found as Python
    finds them."""
    from signalpost.automations.selectors import profiles_date_reached
    from signalpost.automations.services import DATE_GRACE

    automation = trial_reminder(newsletter, offset=-3 * DAY)
    moment = NOW + timedelta(days=3)
    forms = [
        ("%Y-%m-%dT%H:%M+23:59", None),
        ("%Y-%m-%dT%H:%M-23:59", None),
        ("%Y-%m-%dT%H:%M", "Pacific/Kiritimati"),
        ("%Y-%m-%dT%H:%M", "Etc/GMT+12"),
        ("%Y-%m-%d", "Pacific/Kiritimati"),
        ("%Y-%m-%d", "Etc/GMT+12"),
    ]
    people = [
        Profile(
            email=f"h{hours + 200}f{number}@example.com",
            attributes={
                "trial_end": (moment + timedelta(hours=hours)).strftime(form),
                "time_zone": zone,
            },
        )
        for hours in range(-4 * 24, 3 * 24)
        for number, (form, zone) in enumerate(forms)
    ]
    Profile.objects.bulk_create(people)
    Subscription.objects.bulk_create(
        Subscription(profile=person, newsletter=newsletter, status="active", source="import")
        for person in people
    )
    expected = {
        person.pk
        for person in people
        if moment - DATE_GRACE
        <= date_due(person.attributes["trial_end"], person.attributes["time_zone"])
        <= moment
    }
    found = profiles_date_reached(automation=automation, now=NOW, grace=DATE_GRACE)
    assert {pk for pk, _ in found} == expected
    assert len(expected) > 100


@pytest.mark.django_db
def test_the_beat_queues_one_enrolling_task_when_a_date_is_reached(newsletter, at):
    from django_tasks_db.models import DBTaskResult

    from signalpost.automations.services import date_reached_soon
    from signalpost.automations.tasks import automations_date_enroll

    trial_reminder(newsletter)
    subscriber(newsletter, "ann@example.com", trial_end="2026-12-14")
    queued = DBTaskResult.objects.filter(task_path=automations_date_enroll.module_path)
    assert date_reached_soon() is False
    assert not queued.exists(), "nobody due yet"

    at.move(DAY)
    assert date_reached_soon() is True
    assert date_reached_soon() is True
    assert queued.count() == 1, "one waiting task, however often the beat looks"
    assert enrolled(Automation.objects.get(name="Trial ends")) == set(), "the task enrolls"


@pytest.mark.django_db
def test_a_date_many_share_is_enrolled_a_chunk_at_a_time_until_nobody_is_left(
    newsletter, at, monkeypatch
):
    from signalpost.automations import services

    monkeypatch.setattr(services, "_ENROLL_CHUNK", 3)
    automation = trial_reminder(newsletter, offset=0)
    for number in range(7):
        subscriber(newsletter, f"p{number}@example.com", trial_end="2026-12-10")
    assert enroll_date_reached() == 7
    assert len(enrolled(automation)) == 7
    assert set(Enrollment.objects.values_list("trigger_date", flat=True)) == {"2026-12-10"}
