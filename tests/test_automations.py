"""Automations: people walk through a sequence of waits, emails, tags and branches, once each."""

import io
import re
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import transaction
from django.utils import timezone

from signalpost.accounts.services import profile_attributes_update, profile_tags_set
from signalpost.automations import clock
from signalpost.automations.models import Automation, Enrollment, StepRun
from signalpost.automations.selectors import automation_funnel
from signalpost.automations.services import (
    automation_activate,
    automation_create,
    automation_pause,
    automation_update,
    run_soon,
)
from signalpost.engagement.models import Engagement, Kind
from signalpost.engagement.services import hits_record_all
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.signals import automation_step_sent, enrollment_exited
from tests.durable_helpers import (
    kill_mid_way_and_restart,
    run_worker_until_idle,
    start_worker,
    stop,
    wait_for,
    workers_send_to_inbox,
)
from tests.factories import make_newsletter
from tests.mail import html_part, text_part
from tests.recorders import SignalRecorder

DAY = 24 * 3600


def email(subject, body="Hello.\n\n[Read more](https://example.com/more)"):
    return {"kind": "email", "config": {"subject": subject, "body_markdown": body}}


def wait(seconds):
    return {"kind": "wait", "config": {"seconds": seconds}}


@pytest.fixture
def moved_clock(monkeypatch):
    """Automations' clock, moved forward by ``moved_clock.advance(seconds)``: never slept."""

    class Moved:
        offset = timedelta(0)

        def advance(self, seconds):
            self.offset += timedelta(seconds=seconds)

    moved = Moved()
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + moved.offset)
    return moved


def run_due():
    """What the workers' beat does once a wait has ended, then the worker running it."""
    with transaction.atomic():
        run_soon()
    run_worker_until_idle()


def subjects_to(inbox, address):
    return [
        message["Subject"] for message in inbox.to(address) if "Welcome" not in message["Subject"]
    ]


def three_steps(newsletter, **fields):
    automation = automation_create(
        newsletter=newsletter,
        name="Onboarding",
        trigger="subscribed",
        steps=[
            email("Day one"),
            wait(2 * DAY),
            email("Day three"),
            wait(DAY),
            {"kind": "tag_add", "config": {"tag": "onboarded"}},
        ],
        **fields,
    )
    return automation_activate(automation=automation)


def subscribe_both(inbox, newsletter):
    """Ann and Bob subscribe through the form; wait for their welcome and first step."""
    for address in ("ann@example.com", "bob@example.com"):
        subscribe(email=address, newsletter=newsletter, source="form")
    run_worker_until_idle()
    inbox.wait_for(4)


@pytest.mark.django_db(transaction=True)
def test_a_three_step_sequence_sends_each_email_once_its_wait_is_over(
    smtp_inbox, newsletter, moved_clock
):
    automation = three_steps(newsletter)
    subscribe_both(smtp_inbox, newsletter)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one"]
    assert subjects_to(smtp_inbox, "bob@example.com") == ["Day one"]

    moved_clock.advance(DAY)
    run_due()
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one"], "still waiting"

    moved_clock.advance(DAY + 1)
    run_due()
    smtp_inbox.wait_for(6)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one", "Day three"]
    message = smtp_inbox.to("bob@example.com")[-1]
    assert "/unsubscribe/" in text_part(message), "the newsletter's template, its links"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    moved_clock.advance(DAY + 1)
    run_due()
    enrollments = Enrollment.objects.filter(automation=automation)
    assert set(enrollments.values_list("status", flat=True)) == {"finished"}
    assert set(enrollments.values_list("profile__tags__name", flat=True)) == {"onboarded"}
    # Each email step's record is its delivery; the waits and the tag have a StepRun.
    sent = Delivery.objects.filter(issue__automation_step__automation=automation, status="sent")
    assert sent.count() == 2 * 2
    assert StepRun.objects.filter(enrollment__automation=automation).count() == 2 * 3
    assert len(smtp_inbox.envelopes) == 6, "nothing sent twice"


@pytest.mark.django_db(transaction=True)
def test_an_email_sent_by_a_run_that_died_before_its_record_is_not_sent_again(
    smtp_inbox, newsletter
):
    automation = three_steps(newsletter)
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    subscribe(email="bob@example.com", newsletter=newsletter, source="form")
    # Ann's Day one went out in a run that died before it recorded the step.
    ann = Enrollment.objects.get(automation=automation, profile__email="ann@example.com")
    Delivery.objects.create(
        issue=automation.steps.get(position=0).issue,
        profile=ann.profile,
        email="ann@example.com",
        status=Delivery.Status.SENT,
    )
    run_worker_until_idle()
    smtp_inbox.wait_for(3)
    assert subjects_to(smtp_inbox, "ann@example.com") == [], "sent once, by the run that died"
    assert subjects_to(smtp_inbox, "bob@example.com") == ["Day one"]
    day_one = automation.steps.get(position=0).issue
    for enrollment in Enrollment.objects.filter(automation=automation):
        assert Delivery.objects.get(issue=day_one, profile=enrollment.profile).status == "sent"
        assert (enrollment.status, enrollment.position) == ("active", 2), "waiting for day three"
    assert automation_funnel(automation=automation)["steps"][0]["ran"] == 2


@pytest.mark.django_db(transaction=True)
def test_someone_who_unsubscribes_mid_sequence_gets_no_further_step(
    smtp_inbox, newsletter, moved_clock
):
    automation = three_steps(newsletter)
    subscribe_both(smtp_inbox, newsletter)

    unsubscribe(email="ann@example.com", newsletter=newsletter, reason="form")
    moved_clock.advance(2 * DAY + 1)
    run_due()
    smtp_inbox.wait_for(5)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one"]
    assert subjects_to(smtp_inbox, "bob@example.com") == ["Day one", "Day three"]
    ann = Enrollment.objects.get(automation=automation, profile__email="ann@example.com")
    assert (ann.status, ann.exit_reason) == ("exited", "unsubscribed")


@pytest.mark.django_db(transaction=True)
def test_a_paused_automation_holds_everyone_until_it_is_resumed(
    smtp_inbox, newsletter, moved_clock
):
    automation = three_steps(newsletter)
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    smtp_inbox.wait_for(2)
    automation_pause(automation=automation)

    moved_clock.advance(2 * DAY + 1)
    run_due()
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one"]

    automation_activate(automation=automation)
    run_worker_until_idle()
    smtp_inbox.wait_for(3)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one", "Day three"]


@pytest.mark.django_db(transaction=True)
def test_an_edited_email_reaches_those_who_have_not_got_there_yet(
    smtp_inbox, newsletter, moved_clock
):
    automation = three_steps(newsletter)
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    smtp_inbox.wait_for(2)
    automation_update(
        automation=automation,
        steps=[
            email("Day one, edited"),
            wait(2 * DAY),
            email("Day three, edited"),
            wait(DAY),
            {"kind": "tag_add", "config": {"tag": "onboarded"}},
        ],
    )
    moved_clock.advance(2 * DAY + 1)
    run_due()
    smtp_inbox.wait_for(3)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one", "Day three, edited"]


def nudge_started(smtp_inbox, newsletter):
    """An active "Nudge": an email, a day, then a second email only for who did not
    click the first (a branch over it), then a tag; Ann and Bob subscribed to it."""
    automation = automation_create(
        newsletter=newsletter,
        name="Nudge",
        trigger="subscribed",
        steps=[
            email("Look at this"),
            wait(DAY),
            {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 4}},
            email("You missed this"),
            {"kind": "tag_add", "config": {"tag": "nudged"}},
        ],
    )
    automation_activate(automation=automation)
    subscribe_both(smtp_inbox, newsletter)
    return automation


@pytest.mark.django_db(transaction=True)
def test_a_branch_follows_who_clicked_the_previous_email(smtp_inbox, newsletter, moved_clock):
    automation = nudge_started(smtp_inbox, newsletter)
    step_issue = automation.steps.get(position=0).issue
    ann = Delivery.objects.get(issue=step_issue, email="ann@example.com")
    Engagement.objects.create(
        newsletter=newsletter,
        issue=step_issue,
        profile=ann.profile,
        kind=Kind.CLICK,
        link_index=0,
        is_human=True,
        occurred_at=timezone.now(),
    )

    moved_clock.advance(DAY + 1)
    run_due()
    smtp_inbox.wait_for(5)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Look at this"]
    assert subjects_to(smtp_inbox, "bob@example.com") == ["Look at this", "You missed this"]
    enrollments = Enrollment.objects.filter(automation=automation)
    assert set(enrollments.values_list("status", flat=True)) == {"finished"}
    assert set(enrollments.values_list("profile__tags__name", flat=True)) == {"nudged"}


@pytest.mark.django_db(transaction=True)
def test_a_tag_starts_an_automation_and_its_exit_tag_ends_it(smtp_inbox, newsletter, moved_clock):
    automation = automation_create(
        newsletter=newsletter,
        name="Trial",
        trigger="tagged",
        trigger_value="trial",
        exit_tag="customer",
        steps=[wait(DAY), email("Your trial ends soon")],
    )
    automation_activate(automation=automation)
    ann = subscribe(email="ann@example.com", newsletter=newsletter, source="form").profile
    bob = subscribe(email="bob@example.com", newsletter=newsletter, source="form").profile
    profile_tags_set(profile=ann, names=["trial"])
    profile_tags_set(profile=bob, names=["trial"])
    run_worker_until_idle()
    profile_tags_set(profile=bob, names=["trial", "customer"])

    moved_clock.advance(DAY + 1)
    run_due()
    smtp_inbox.wait_for(3)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Your trial ends soon"]
    assert subjects_to(smtp_inbox, "bob@example.com") == []
    bob_enrollment = Enrollment.objects.get(automation=automation, profile=bob)
    assert (bob_enrollment.status, bob_enrollment.exit_reason) == ("exited", "tagged customer")


@pytest.mark.django_db(transaction=True)
def test_automation_emails_stay_out_of_the_issue_lists(smtp_inbox, newsletter, admin_client):
    three_steps(newsletter)
    response = admin_client.get("/admin/publishing/issue/")
    assert response.status_code == 200
    assert "Day one" not in response.content.decode()
    assert Issue.objects.filter(is_automated=True).count() == 2


RECIPIENTS = 200


def crashy_automation(settings, monkeypatch, *, steps):
    """An active automation of ``steps`` that RECIPIENTS subscribers entered, for worker
    processes that send batches of 50 at 60 a second with a 2 s lease."""
    workers_send_to_inbox(settings, monkeypatch, batch_size=50, rate_per_second=60)
    monkeypatch.setenv("WORKER_LEASE_SECONDS", "2")
    letter = make_newsletter(slug="crashy")
    automation = automation_create(
        newsletter=letter, name="Hello", trigger="subscribed", steps=steps
    )
    automation_activate(automation=automation)
    for number in range(RECIPIENTS):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    return automation


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_step_sends_at_most_the_message_in_flight_twice(
    tmp_path, smtp_inbox, settings, monkeypatch
):
    automation = crashy_automation(settings, monkeypatch, steps=[email("Hello there")])

    kill_mid_way_and_restart(
        tmp_path,
        smtp_inbox,
        recipients=RECIPIENTS,
        done=lambda: (
            Enrollment.objects.filter(automation=automation, status="finished").count()
            == RECIPIENTS
        ),
        what="everyone to finish",
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_before_a_wait_loses_nobody_and_doubles_no_step(
    tmp_path, smtp_inbox, settings, monkeypatch
):
    steps = [email("Hello there"), wait(DAY), email("Again")]
    automation = crashy_automation(settings, monkeypatch, steps=steps)
    waiting = Enrollment.objects.filter(automation=automation, status="active", position=2)

    kill_mid_way_and_restart(
        tmp_path,
        smtp_inbox,
        recipients=RECIPIENTS,
        done=lambda: waiting.filter(claimed_by="").count() == RECIPIENTS,
        what="everyone to wait for the second email",
    )
    first = automation.steps.get(position=0).issue
    assert Delivery.objects.filter(issue=first, status="sent").count() == RECIPIENTS
    assert automation_funnel(automation=automation)["steps"][0]["ran"] == RECIPIENTS
    wait_runs = StepRun.objects.filter(enrollment__automation=automation, position=1)
    assert wait_runs.count() == RECIPIENTS, "each wait recorded once"
    assert not Delivery.objects.filter(issue=automation.steps.get(position=2).issue).exists()


@pytest.mark.django_db(transaction=True)
def test_a_new_newsletter_welcomes_through_its_welcome_automation(smtp_inbox, newsletter):
    welcome = Automation.objects.get(newsletter=newsletter, is_welcome=True)
    assert (welcome.status, [s.kind for s in welcome.steps.all()]) == ("active", ["welcome"])
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    subscribe(email="bob@example.com", newsletter=newsletter, source="admin")
    run_worker_until_idle()
    [message] = smtp_inbox.wait_for(1)
    assert (message["To"], message["Subject"]) == ("ann@example.com", "Welcome to The Weekly")
    assert "/unsubscribe/" in text_part(message)
    assert smtp_inbox.to("bob@example.com") == [], "staff additions stay silent, as before"
    enrollment = Enrollment.objects.get(automation=welcome)
    assert enrollment.status == "finished"
    assert enrollment.runs.get().outcome == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_newsletter_without_a_welcome_automation_welcomes_as_before(smtp_inbox, newsletter):
    newsletter.automations.all().delete()
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"] == "Welcome to The Weekly"
    assert not Enrollment.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_someone_who_comes_back_is_welcomed_again(smtp_inbox, newsletter):
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    unsubscribe(email="ann@example.com", newsletter=newsletter, reason="form")
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    messages = smtp_inbox.wait_for(2)
    assert [m["Subject"] for m in messages] == ["Welcome to The Weekly"] * 2


@pytest.mark.django_db(transaction=True)
def test_an_import_into_a_sequence_queues_runs_by_batch_not_by_person(
    smtp_inbox, newsletter, settings
):
    from django_tasks_db.models import DBTaskResult

    from signalpost.automations.tasks import automations_run
    from signalpost.newsletters.imports import subscribers_import

    settings.SIGNALPOST_SEND_BATCH_SIZE = 50
    automation = automation_create(
        newsletter=newsletter,
        name="Imported",
        trigger="subscribed",
        trigger_sources=["import"],
        steps=[email("Hello, imported")],
    )
    automation_activate(automation=automation)
    rows = "email\n" + "".join(f"reader{number}@example.com\n" for number in range(300))
    subscribers_import(binary=io.BytesIO(rows.encode()), newsletter=newsletter, batch_size=100)
    runs = DBTaskResult.objects.filter(task_path=automations_run.module_path)
    assert runs.count() <= 3, "one waiting run at a time, however many people"

    run_worker_until_idle()
    smtp_inbox.wait_for(300)
    assert len(Counter(envelope.rcpt_tos[0] for envelope in smtp_inbox.envelopes)) == 300
    # A run per batch, and one more per batch for the step after its email.
    assert runs.count() <= 2 * (300 // 50) + 3, "runs grow with batches (of 50), not people"
    assert smtp_inbox.sessions <= 300 // 50 + 1, "one SMTP connection per batch"
    assert Enrollment.objects.filter(automation=automation, status="finished").count() == 300


@pytest.mark.django_db(transaction=True)
def test_staff_see_a_persons_automations_and_each_automations_funnel(
    smtp_inbox, newsletter, admin_client, moved_clock
):
    automation = three_steps(newsletter)
    subscribe_both(smtp_inbox, newsletter)
    unsubscribe(email="ann@example.com", newsletter=newsletter, reason="form")

    ann = Enrollment.objects.get(automation=automation, profile__email="ann@example.com")
    profile_page = admin_client.get(f"/admin/accounts/profile/{ann.profile_id}/change/")
    section = profile_page.content.decode().split('id="staff-automations"')[1]
    assert "Onboarding" in section and "Exited" in section and "unsubscribed" in section

    page = admin_client.get(f"/admin/automations/automation/{automation.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "2 enrolled: 1 in progress, 0 finished, 1 exited." in text
    assert "<td>0</td><td>email</td><td>0</td><td>2</td><td>2</td><td>0</td>" in text

    response = admin_client.post(
        "/admin/automations/automation/",
        {"action": "pause", "_selected_action": [automation.pk]},
    )
    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.status == "paused"


@pytest.mark.django_db(transaction=True)
def test_attribute_and_webhook_steps_run_once_each(smtp_inbox, newsletter):
    from signalpost.webhooks.models import WebhookEndpoint, WebhookMessage

    WebhookEndpoint.objects.create(
        url="https://hooks.example.com/x", secret="s" * 32, events=["automation.step"]
    )
    automation = automation_create(
        newsletter=newsletter,
        name="Plan",
        trigger="subscribed",
        steps=[
            {"kind": "set_attribute", "config": {"key": "plan", "value": "trial"}},
            {"kind": "webhook", "config": {"event": "trial_started"}},
        ],
    )
    automation_activate(automation=automation)
    ann = subscribe(email="ann@example.com", newsletter=newsletter, source="form").profile
    run_worker_until_idle()
    run_due()

    ann.refresh_from_db()
    assert ann.attributes == {"plan": "trial"}
    [message] = WebhookMessage.objects.filter(event="automation.step")
    assert message.payload["data"] == {
        "automation": automation.pk,
        "name": "Plan",
        "newsletter": "weekly",
        "email": "ann@example.com",
        "event": "trial_started",
    }


def test_a_weekly_wait_ends_at_that_time_in_the_persons_time_zone():
    from datetime import UTC, datetime

    from signalpost.accounts.models import Profile
    from signalpost.automations.engine import wait_end

    # Wednesday 2026-12-02 20:00 UTC is Thursday 05:00 in Tokyo.
    now = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
    tokyo = Profile(email="a@example.com", attributes={"time_zone": "Asia/Tokyo"})
    nowhere = Profile(email="b@example.com", attributes={"time_zone": "Mars/Olympus"})
    monday_nine = {"weekday": 0, "time": "09:00"}
    assert wait_end(monday_nine, profile=tokyo, now=now) == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert wait_end(monday_nine, profile=nowhere, now=now) == datetime(
        2026, 12, 7, 9, 0, tzinfo=UTC
    )
    wednesday_eight_pm = {"weekday": 2, "time": "20:00"}
    assert wait_end(wednesday_eight_pm, profile=nowhere, now=now) == datetime(
        2026, 12, 9, 20, 0, tzinfo=UTC
    ), "never now: a week later"


@pytest.mark.django_db(transaction=True)
def test_a_step_that_puts_on_the_exit_tag_is_the_last_that_runs(smtp_inbox, newsletter):
    automation = automation_create(
        newsletter=newsletter,
        name="Short",
        trigger="subscribed",
        exit_tag="done",
        steps=[
            {"kind": "tag_add", "config": {"tag": "done"}},
            {"kind": "set_attribute", "config": {"key": "after", "value": "exit"}},
        ],
    )
    automation_activate(automation=automation)
    ann = subscribe(email="ann@example.com", newsletter=newsletter, source="form").profile
    run_worker_until_idle()

    enrollment = Enrollment.objects.get(automation=automation, profile=ann)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "tagged done")
    ann.refresh_from_db()
    assert ann.attributes == {}


TRACKED = re.compile(r"https://news\.example\.com/c/[A-Za-z0-9_.\-]+")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.django_db(transaction=True)
def test_a_branch_follows_a_real_click_on_the_emails_tracked_link(
    smtp_inbox, newsletter, moved_clock, client
):
    automation = nudge_started(smtp_inbox, newsletter)
    [message] = [m for m in smtp_inbox.to("ann@example.com") if m["Subject"] == "Look at this"]
    [link] = TRACKED.findall(html_part(message))
    # A person reads it a minute later (a click within seconds of delivery is a scanner's).
    Delivery.objects.update(sent_at=timezone.now() - timedelta(minutes=1))
    response = client.get(urlsplit(link).path, HTTP_USER_AGENT=BROWSER)
    assert (response.status_code, response["Location"]) == (302, "https://example.com/more")
    assert hits_record_all(now=timezone.now() + timedelta(minutes=1)) == 1, "the workers' beat"

    moved_clock.advance(DAY + 1)
    run_due()
    smtp_inbox.wait_for(5)
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Look at this"], "the branch jumped"
    assert subjects_to(smtp_inbox, "bob@example.com") == ["Look at this", "You missed this"]
    ann = Enrollment.objects.get(automation=automation, profile__email="ann@example.com")
    # The wait, the branch and the tag ran (the email's record is its delivery).
    assert [run.position for run in ann.runs.order_by("position")] == [1, 2, 4]


PAUSED_RECIPIENTS = 300


@pytest.mark.django_db(transaction=True)
def test_a_pause_mid_batch_stops_the_workers_and_a_resume_sends_each_once(
    tmp_path, smtp_inbox, settings, monkeypatch
):
    workers_send_to_inbox(settings, monkeypatch, batch_size=150, rate_per_second=40)
    letter = make_newsletter(slug="paused")
    automation = automation_create(
        newsletter=letter, name="Hello", trigger="subscribed", steps=[email("Hello there")]
    )
    automation_activate(automation=automation)
    for number in range(PAUSED_RECIPIENTS):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    step_issue = automation.steps.get().issue

    workers = [start_worker(name, tmp_path, "--lease=2") for name in ("one", "two")]
    try:
        wait_for(lambda: len(smtp_inbox.envelopes) >= 40, timeout=60, what="40 messages")
        automation_pause(automation=automation)
        time.sleep(1.0)
        after_a_second = len(smtp_inbox.envelopes)
        time.sleep(2.0)
        assert len(smtp_inbox.envelopes) == after_a_second, "nothing leaves a second after"
        assert after_a_second < PAUSED_RECIPIENTS, "paused mid-batch"
        wait_for(
            lambda: not Delivery.objects.filter(issue=step_issue, status="sending").exists(),
            timeout=10,
            what="the batches to give back their claims",
        )
        sent = Delivery.objects.filter(issue=step_issue, status="sent").count()
        assert sent == after_a_second, "no message beyond those recorded sent"
        held = Enrollment.objects.filter(automation=automation, status="active")
        assert held.filter(position=1).count() == sent, "recorded, held before the end"
        assert automation_funnel(automation=automation)["steps"][0]["ran"] == sent

        automation_activate(automation=automation)
        wait_for(
            lambda: (
                Enrollment.objects.filter(automation=automation, status="finished").count()
                == PAUSED_RECIPIENTS
            ),
            timeout=90,
            what="everyone to finish after the resume",
        )
    finally:
        for worker in workers:
            assert stop(worker) == 0
    received = Counter(envelope.rcpt_tos[0] for envelope in smtp_inbox.envelopes)
    assert len(received) == PAUSED_RECIPIENTS, "nobody left out"
    assert set(received.values()) == {1}, "nobody twice"


@pytest.mark.django_db(transaction=True)
def test_a_welcome_the_server_refuses_for_now_is_sent_once_on_its_retry(
    smtp_inbox, newsletter, moved_clock
):
    smtp_inbox.temporarily_refuse["ann@example.com"] = 1
    subscribe(email="ann@example.com", newsletter=newsletter, source="form")
    run_worker_until_idle()
    assert smtp_inbox.to("ann@example.com") == []
    enrollment = Enrollment.objects.get(profile__email="ann@example.com")
    assert (enrollment.status, enrollment.attempts, enrollment.runs.count()) == ("active", 1, 0)
    run_due()
    assert smtp_inbox.to("ann@example.com") == [], "not before its backoff"

    moved_clock.advance(3600)
    run_due()
    run_due()
    [message] = smtp_inbox.wait_for(1)
    assert (message["To"], message["Subject"]) == ("ann@example.com", "Welcome to The Weekly")
    time.sleep(0.2)
    assert len(smtp_inbox.envelopes) == 1, "exactly once"
    enrollment.refresh_from_db()
    assert enrollment.status == "finished"
    assert enrollment.runs.get().outcome == "sent"


@pytest.mark.django_db(transaction=True)
def test_each_batch_of_an_email_step_sends_automation_step_sent_once(
    smtp_inbox, newsletter, settings
):
    settings.SIGNALPOST_SEND_BATCH_SIZE = 2
    automation = automation_create(
        newsletter=newsletter, name="Hello", trigger="subscribed", steps=[email("Hello there")]
    )
    automation_activate(automation=automation)
    smtp_inbox.refuse.add("refused@example.com")
    for address in ("ann@example.com", "bob@example.com", "cy@example.com", "refused@example.com"):
        subscribe(email=address, newsletter=newsletter, source="admin")
    with SignalRecorder(automation_step_sent) as recorded:
        run_worker_until_idle()
        run_due()
    smtp_inbox.wait_for(3)

    assert all(set(call) == {"signal", *automation_step_sent.arguments} for call in recorded.calls)
    assert {call["automation"] for call in recorded.calls} == {automation}
    assert {call["step"].position for call in recorded.calls} == {0}
    assert len(recorded.calls) == 2, "one per batch of two"
    announced = [pk for call in recorded.calls for pk in call["profile_ids"]]
    sent_to = Subscription.objects.filter(
        newsletter=newsletter,
        profile__email__in=["ann@example.com", "bob@example.com", "cy@example.com"],
    ).values_list("profile_id", flat=True)
    assert sorted(announced) == sorted(sent_to), "each once; not the refused address"


@pytest.mark.django_db(transaction=True)
def test_a_welcome_step_sends_automation_step_sent_for_whom_it_reached(smtp_inbox, newsletter):
    with SignalRecorder(automation_step_sent) as recorded:
        ann = subscribe(email="ann@example.com", newsletter=newsletter, source="form").profile
        run_worker_until_idle()
    smtp_inbox.wait_for(1)
    [call] = recorded.calls
    assert (call["step"].kind, call["profile_ids"]) == ("welcome", [ann.pk])
    assert call["automation"].is_welcome


@pytest.mark.django_db(transaction=True)
def test_someone_found_gone_when_their_step_is_due_exits_with_enrollment_exited(
    smtp_inbox, newsletter, moved_clock
):
    automation = three_steps(newsletter)
    subscribe_both(smtp_inbox, newsletter)
    # Ended without the signal (written straight to the table, as an old import did).
    Subscription.objects.filter(profile__email="ann@example.com").update(status="bounced")
    moved_clock.advance(2 * DAY + 1)
    with SignalRecorder(enrollment_exited) as recorded:
        run_due()
    [call] = recorded.calls
    assert (call["profile"].email, call["reason"], call["automation"]) == (
        "ann@example.com",
        "bounced",
        automation,
    )
    assert subjects_to(smtp_inbox, "ann@example.com") == ["Day one"]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_email_of_a_date_it_finds_reached(
    tmp_path, smtp_inbox, settings, monkeypatch
):
    workers_send_to_inbox(settings, monkeypatch, batch_size=50, rate_per_second=60)
    letter = make_newsletter(slug="dated")
    automation = automation_create(
        newsletter=letter,
        name="Renewal",
        trigger="date_reached",
        trigger_value="renews_on",
        trigger_offset_seconds=-3 * DAY,
        steps=[email("Your plan renews in three days")],
    )
    automation_activate(automation=automation)
    in_three_days = timezone.now() + timedelta(days=3)
    for address, renews_on in [
        ("ann@example.com", (in_three_days - timedelta(minutes=1)).isoformat()),
        ("bob@example.com", (in_three_days + timedelta(days=2)).date().isoformat()),
        ("cy@example.com", "someday"),
    ]:
        profile = subscribe(email=address, newsletter=letter, source="admin").profile
        profile_attributes_update(profile=profile, values={"renews_on": renews_on})

    worker = start_worker("dates", tmp_path, "--lease=2")
    try:
        wait_for(lambda: smtp_inbox.envelopes, timeout=30, what="the reminder")
        time.sleep(1.0)
    finally:
        assert stop(worker) == 0
    assert [m["To"] for m in smtp_inbox.messages] == ["ann@example.com"]
    assert smtp_inbox.messages[0]["Subject"] == "Your plan renews in three days"
    assert Enrollment.objects.get(automation=automation).status == "finished"
