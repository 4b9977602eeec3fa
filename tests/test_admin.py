"""What staff can and cannot do in the admin, and that it goes through the services."""

import functools
from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.api.tokens import api_token_create
from signalpost.durable.models import DeadLetter
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import (
    BODY_MAX_LENGTH,
    issue_create,
    issue_schedule,
    issue_send,
)
from signalpost.publishing.tasks import issue_send_when_due
from tests.factories import make_newsletter, make_user
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db


def staff_with(client, *codenames):
    """Log in a staff user holding only the permissions named ``app_label.codename``."""
    user = make_user(is_staff=True)
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client.force_login(user)
    return user


def actions_offered(client, url):
    response = client.get(url)
    assert response.status_code == 200
    action_form = response.context["action_form"]  # None when no action is offered
    return {name for name, _ in action_form.fields["action"].choices} if action_form else set()


def run_action(client, url, action, *pks):
    return client.post(url, {"action": action, "_selected_action": list(pks)})


@pytest.fixture
def letter():
    return make_newsletter(slug="weekly", name="The Weekly")


@pytest.fixture
def draft(letter):
    subscribe(email="ann@example.com", newsletter=letter, source="admin")
    return issue_create(newsletter=letter, subject="Hello", body_markdown="Hi.")


ISSUES = "/admin/publishing/issue/"
SUBSCRIPTIONS = "/admin/newsletters/subscription/"
DEAD_LETTERS = "/admin/durable/deadletter/"
TOKENS = "/admin/api/apitoken/"
NEWSLETTERS = "/admin/newsletters/newsletter/"


# Actions need more than the view permission.


def test_view_only_staff_cannot_send_or_schedule_an_issue(client, draft):
    staff_with(client, "publishing.view_issue")
    assert {"send_now", "schedule", "unschedule"}.isdisjoint(actions_offered(client, ISSUES))

    run_action(client, ISSUES, "send_now", draft.pk)

    draft.refresh_from_db()
    assert draft.status == Issue.Status.DRAFT


def test_an_editor_who_may_change_issues_still_cannot_send_them(client, draft):
    staff_with(client, "publishing.view_issue", "publishing.change_issue")
    offered = actions_offered(client, ISSUES)
    assert "unschedule" in offered
    assert {"send_now", "schedule"}.isdisjoint(offered)

    run_action(client, ISSUES, "send_now", draft.pk)

    draft.refresh_from_db()
    assert draft.status == Issue.Status.DRAFT


def test_staff_with_the_send_permission_can_send_an_issue(client, draft):
    staff_with(client, "publishing.view_issue", "publishing.send_issue")
    assert client.get(f"{ISSUES}{draft.pk}/send/").status_code == 200

    client.post(f"{ISSUES}{draft.pk}/send/", {"send": "1"})

    draft.refresh_from_db()
    assert draft.status in {Issue.Status.SENDING, Issue.Status.SENT}


def test_view_only_staff_cannot_send_a_test_email_even_to_themselves(client, draft, smtp_inbox):
    staff_with(client, "publishing.view_issue")
    assert "send_test_to_me" not in actions_offered(client, ISSUES)

    run_action(client, ISSUES, "send_test_to_me", draft.pk)

    assert smtp_inbox.messages == []


def test_staff_with_the_send_permission_get_a_test_email(client, draft, smtp_inbox):
    user = staff_with(client, "publishing.view_issue", "publishing.send_issue")

    run_action(client, ISSUES, "send_test_to_me", draft.pk)

    [test] = smtp_inbox.wait_for(1)
    assert test["To"] == user.email


def test_every_admin_action_needs_more_than_the_view_permission():
    from django.contrib import admin

    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            function = getattr(model_admin, action) if isinstance(action, str) else action
            needed = set(getattr(function, "allowed_permissions", ()))
            assert needed - {"view"}, f"{model.__name__} admin action {action} needs a permission"


def test_view_only_staff_cannot_unsubscribe_or_confirm_anyone(client, letter):
    subscription = subscribe(email="ann@example.com", newsletter=letter, source="admin")
    staff_with(client, "newsletters.view_subscription")
    offered = actions_offered(client, SUBSCRIPTIONS)
    assert {"unsubscribe_selected", "confirm_selected"}.isdisjoint(offered)

    run_action(client, SUBSCRIPTIONS, "unsubscribe_selected", subscription.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_staff_who_may_change_subscriptions_can_unsubscribe_someone(client, letter):
    subscription = subscribe(email="ann@example.com", newsletter=letter, source="admin")
    staff_with(client, "newsletters.view_subscription", "newsletters.change_subscription")
    assert "unsubscribe_selected" in actions_offered(client, SUBSCRIPTIONS)

    run_action(client, SUBSCRIPTIONS, "unsubscribe_selected", subscription.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.UNSUBSCRIBED


def dead_letter():
    return DeadLetter.objects.create(
        receiver="tests.record_probe",
        signal_name="probe",
        payload={},
        idempotency_key="key",
        attempts=5,
        error_class="SMTPException",
        last_error="the mail server said no",
        failed_at=timezone.now(),
    )


def test_view_only_staff_cannot_replay_dead_letters(client):
    letter = dead_letter()
    staff_with(client, "durable.view_deadletter")
    assert "replay_selected" not in actions_offered(client, DEAD_LETTERS)

    run_action(client, DEAD_LETTERS, "replay_selected", letter.pk)

    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.DEAD


def test_staff_who_may_change_dead_letters_can_replay_them(client):
    letter = dead_letter()
    staff_with(client, "durable.view_deadletter", "durable.change_deadletter")
    assert "replay_selected" in actions_offered(client, DEAD_LETTERS)

    run_action(client, DEAD_LETTERS, "replay_selected", letter.pk)

    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.REPLAYING


def test_view_only_staff_cannot_revoke_api_tokens(client):
    token, _ = api_token_create(name="ci", created_by=None)
    staff_with(client, "api.view_apitoken")
    assert "revoke_selected" not in actions_offered(client, TOKENS)

    run_action(client, TOKENS, "revoke_selected", token.pk)

    token.refresh_from_db()
    assert token.revoked_at is None


def test_staff_who_may_change_api_tokens_can_revoke_them(client):
    token, _ = api_token_create(name="ci", created_by=None)
    staff_with(client, "api.view_apitoken", "api.change_apitoken")
    assert "revoke_selected" in actions_offered(client, TOKENS)

    run_action(client, TOKENS, "revoke_selected", token.pk)

    token.refresh_from_db()
    assert token.revoked_at is not None


# Deleting goes through the services, or does not happen.


def test_a_subscription_cannot_be_deleted_in_the_admin_only_unsubscribed(client, letter):
    subscription = subscribe(email="ann@example.com", newsletter=letter, source="admin")
    client.force_login(make_user(is_staff=True, is_superuser=True))
    assert "delete_selected" not in actions_offered(client, SUBSCRIPTIONS)

    response = client.post(f"{SUBSCRIPTIONS}{subscription.pk}/delete/", {"post": "yes"})
    run_action(client, SUBSCRIPTIONS, "delete_selected", subscription.pk)

    assert response.status_code == 403
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_a_draft_issue_can_be_deleted(client, draft):
    client.force_login(make_user(is_staff=True, is_superuser=True))

    response = client.post(f"{ISSUES}{draft.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Issue.objects.exists()


def test_selected_draft_issues_can_be_deleted_together(client, letter, draft):
    other = issue_create(newsletter=letter, subject="Another", body_markdown="x")
    client.force_login(make_user(is_staff=True, is_superuser=True))

    client.post(
        ISSUES,
        {"action": "delete_selected", "_selected_action": [draft.pk, other.pk], "post": "yes"},
    )

    assert not Issue.objects.exists()


def test_a_sent_issue_cannot_be_deleted_with_its_delivery_records(client, draft):
    issue_send_prepared(issue=draft)
    client.force_login(make_user(is_staff=True, is_superuser=True))

    response = client.post(f"{ISSUES}{draft.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Delivery.objects.filter(issue=draft).count() == 1


def test_deleting_selected_issues_refuses_when_one_is_not_a_draft(client, letter, draft):
    other = issue_create(newsletter=letter, subject="Another", body_markdown="x")
    issue_send(issue=draft)
    client.force_login(make_user(is_staff=True, is_superuser=True))

    confirm = client.post(
        ISSUES, {"action": "delete_selected", "_selected_action": [draft.pk, other.pk]}
    )
    response = client.post(
        ISSUES,
        {"action": "delete_selected", "_selected_action": [draft.pk, other.pk], "post": "yes"},
    )

    assert "Cannot delete" in confirm.content.decode()
    assert response.status_code == 403
    assert set(Issue.objects.values_list("pk", flat=True)) == {draft.pk, other.pk}


# The issue form: refusals come back with the author's text.


@pytest.fixture
def editor(client):
    user = make_user(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def issue_form(newsletter, **fields):
    return {
        "newsletter": newsletter.pk,
        "subject": "Hello",
        "body_markdown": "Some *text*",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        **fields,
    }


def test_a_subject_of_two_lines_is_refused_and_the_text_is_kept(client, editor, letter):
    body = "My carefully written *text*."
    response = client.post(
        f"{ISSUES}add/", issue_form(letter, subject="Hello\nthere", body_markdown=body)
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["subject"] == ["A subject is one line."]
    assert body in response.content.decode()
    assert not Issue.objects.exists()


def test_a_body_over_the_maximum_length_is_refused_on_the_form(client, editor, letter):
    body = "x" * (BODY_MAX_LENGTH + 1)
    response = client.post(f"{ISSUES}add/", issue_form(letter, body_markdown=body))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["body_markdown"] == [f"The body has at most {BODY_MAX_LENGTH} characters."]
    assert not Issue.objects.exists()


def test_a_refused_change_leaves_the_issue_as_it_was(client, editor, draft):
    response = client.post(
        f"{ISSUES}{draft.pk}/change/", issue_form(draft.newsletter, subject="Hi\nthere")
    )

    assert response.status_code == 200
    assert "subject" in response.context["adminform"].form.errors
    draft.refresh_from_db()
    assert draft.subject == "Hello"


def test_a_sent_issue_is_shown_read_only(client, editor, draft):
    issue_send(issue=draft)

    page = client.get(f"{ISSUES}{draft.pk}/change/")
    response = client.post(f"{ISSUES}{draft.pk}/change/", issue_form(draft.newsletter))

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert response.status_code == 403


# The scheduled time typed in the issue form is the one the issue is scheduled at.


def in_two_days_at_nine():
    day = timezone.localdate() + timedelta(days=2)
    return timezone.make_aware(datetime.combine(day, time(9)))


def time_fields(when):
    return {"scheduled_at_0": f"{when:%Y-%m-%d}", "scheduled_at_1": f"{when:%H:%M:%S}"}


def schedule_from_the_send_page(client, issue):
    """Press Schedule on the send page with the time it offers: the one typed in the form."""
    page = client.get(f"{ISSUES}{issue.pk}/send/")
    offered = page.context["schedule_form"]["scheduled_at"].value()
    client.post(f"{ISSUES}{issue.pk}/send/", {"schedule": "1", "scheduled_at": offered})


def due_checks():
    """The pending send-when-due tasks, oldest first, as (scheduled_at, run it now)."""
    tasks = DBTaskResult.objects.filter(task_path__endswith=".issue_send_when_due")
    return [
        (task.run_after, functools.partial(issue_send_when_due.call, **task.args_kwargs["kwargs"]))
        for task in tasks.order_by("enqueued_at")
    ]


def test_the_time_typed_when_adding_an_issue_is_the_one_it_is_scheduled_at(client, editor, letter):
    when = in_two_days_at_nine()
    client.post(f"{ISSUES}add/", issue_form(letter, **time_fields(when)))
    issue = Issue.objects.get()

    schedule_from_the_send_page(client, issue)

    issue.refresh_from_db()
    assert (issue.status, issue.scheduled_at) == (Issue.Status.SCHEDULED, when)
    assert [at for at, _ in due_checks()] == [when]


def test_the_time_typed_when_changing_a_draft_is_the_one_it_is_scheduled_at(client, editor, draft):
    when = in_two_days_at_nine()
    client.post(f"{ISSUES}{draft.pk}/change/", issue_form(draft.newsletter, **time_fields(when)))

    schedule_from_the_send_page(client, draft)

    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Issue.Status.SCHEDULED, when)


def test_moving_a_scheduled_issue_sends_it_at_the_new_time_not_the_old(client, editor, draft):
    issue_schedule(issue=draft, at=in_two_days_at_nine())
    later = in_two_days_at_nine() + timedelta(days=1)

    client.post(f"{ISSUES}{draft.pk}/change/", issue_form(draft.newsletter, **time_fields(later)))
    (_, old_time_comes), (new_time, new_time_comes) = due_checks()

    old_time_comes()
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Issue.Status.SCHEDULED, later)
    assert new_time == later
    new_time_comes()
    draft.refresh_from_db()
    assert draft.status == Issue.Status.SENDING


def test_clearing_the_time_of_a_scheduled_issue_makes_it_a_draft_again(client, editor, draft):
    issue_schedule(issue=draft, at=in_two_days_at_nine())

    client.post(f"{ISSUES}{draft.pk}/change/", issue_form(draft.newsletter))

    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Issue.Status.DRAFT, None)


def test_changing_only_the_text_of_a_scheduled_issue_keeps_its_schedule(client, editor, draft):
    when = in_two_days_at_nine()
    issue_schedule(issue=draft, at=when)

    client.post(
        f"{ISSUES}{draft.pk}/change/",
        issue_form(draft.newsletter, subject="Better subject", **time_fields(when)),
    )

    draft.refresh_from_db()
    assert (draft.subject, draft.status, draft.scheduled_at) == (
        "Better subject",
        Issue.Status.SCHEDULED,
        when,
    )
    assert len(due_checks()) == 1


def test_a_scheduled_time_in_the_past_is_refused_on_the_form(client, editor, letter):
    yesterday = timezone.now() - timedelta(days=1)
    response = client.post(f"{ISSUES}add/", issue_form(letter, **time_fields(yesterday)))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["scheduled_at"] == ["A scheduled time must be in the future."]
    assert not Issue.objects.exists()


# The changelists cost the same number of queries however many rows they show.


def queries_for_page(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def sent_issues(letter, count):
    issues = Issue.objects.bulk_create(
        Issue(
            newsletter=letter,
            subject=f"Issue {number}",
            slug=f"issue-{number}",
            body_markdown="x",
            status=Issue.Status.SENT,
            sending_started_at=timezone.now(),
            sent_at=timezone.now(),
        )
        for number in range(count)
    )
    Delivery.objects.bulk_create(
        Delivery(issue=issue, email=f"{status}@example.com", status=status)
        for issue in issues
        for status in [Delivery.Status.SENT, Delivery.Status.BOUNCED, Delivery.Status.QUEUED]
    )


def test_the_issue_list_runs_as_many_queries_for_50_sent_issues_as_for_5(client, editor):
    sent_issues(make_newsletter(), 5)
    five = queries_for_page(client, ISSUES)
    sent_issues(make_newsletter(), 45)

    assert queries_for_page(client, ISSUES) == five


def test_the_issue_list_shows_each_sends_progress(client, editor, letter):
    sent_issues(letter, 1)

    page = client.get(ISSUES).content.decode()

    assert '<progress max="100" value="66.7"' in page
    assert "66.7% · 1 sent · 1 failed" in page


def test_the_newsletter_list_runs_as_many_queries_for_50_newsletters_as_for_5(client, editor):
    def newsletters(count):
        for _ in range(count):
            letter = make_newsletter()
            for status in [Subscription.Status.ACTIVE, Subscription.Status.UNSUBSCRIBED]:
                Subscription.objects.create(
                    profile=Profile.objects.create(email=f"{letter.slug}-{status}@example.com"),
                    newsletter=letter,
                    status=status,
                )

    newsletters(5)
    five = queries_for_page(client, NEWSLETTERS)
    newsletters(45)

    assert queries_for_page(client, NEWSLETTERS) == five


def test_the_newsletter_list_counts_only_active_subscribers(client, editor, letter):
    subscribe(email="ann@example.com", newsletter=letter, source="admin")
    subscribe(email="bob@example.com", newsletter=letter, source="admin")
    unsubscribe(email="bob@example.com", newsletter=letter, reason="test")

    page = client.get(NEWSLETTERS).content.decode()

    assert '<td class="field-active_subscribers">1</td>' in page


def test_the_dashboard_shows_subscriber_growth_only_to_staff_who_may_see_it(client, letter):
    staff_with(client)
    assert 'id="signalpost-dashboard"' not in client.get("/admin/").content.decode()
    staff_with(client, "newsletters.view_subscription", "publishing.view_issue")
    assert 'id="signalpost-dashboard"' in client.get("/admin/").content.decode()
