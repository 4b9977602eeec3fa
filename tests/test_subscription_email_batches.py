"""The subscription emails are sent in batches: each person's email rendered on its own,
the batch over one SMTP connection, each call retried or dead-lettered on its own."""

import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.durable.models import DeadLetter
from signalpost.durable.worker import BatchWorker
from signalpost.newsletters.models import EmailTemplate, Subscription
from signalpost.newsletters.services import ConsentEvidence, subscribe
from signalpost.newsletters.tasks import subscribe_queue
from tests.durable_helpers import run_worker_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = [f"person{number}@example.com" for number in range(6)]


def subscribe_all(newsletter, addresses):
    with transaction.atomic():
        for address in addresses:
            subscribe(email=address, newsletter=newsletter, source="form")


def test_a_burst_of_confirmations_goes_over_one_connection(smtp_inbox, double_opt_in_newsletter):
    subscribe_all(double_opt_in_newsletter, PEOPLE)
    run_worker_until_idle()
    messages = smtp_inbox.wait_for(len(PEOPLE))
    assert sorted(message["To"] for message in messages) == PEOPLE
    assert smtp_inbox.sessions == 1, "one SMTP connection for the batch"
    for address in PEOPLE:
        [message] = smtp_inbox.to(address)
        assert "confirm" in message["Subject"].lower()
    bodies = {message["To"]: message.get_body(("plain",)).get_content() for message in messages}
    assert len(set(bodies.values())) == len(PEOPLE), "each rendered for its own person"
    assert DBTaskResult.objects.exclude(status=TaskResultStatus.SUCCESSFUL).count() == 0


def test_a_refused_address_fails_alone_and_the_batch_is_delivered(
    smtp_inbox, double_opt_in_newsletter
):
    smtp_inbox.refuse.add(PEOPLE[2])
    subscribe_all(double_opt_in_newsletter, PEOPLE)
    run_worker_until_idle()
    delivered = sorted(message["To"] for message in smtp_inbox.wait_for(len(PEOPLE) - 1))
    assert delivered == [address for address in PEOPLE if address != PEOPLE[2]]
    dead_letter = DeadLetter.objects.get()
    assert dead_letter.attempts == 1, "550 is permanent: no retry"
    assert dead_letter.error_class.endswith("PermanentFailure")
    assert PEOPLE[2] in dead_letter.last_error


def test_a_temporary_refusal_retries_only_that_email_with_the_same_message_id(
    smtp_inbox, double_opt_in_newsletter, settings
):
    smtp_inbox.temporarily_refuse[PEOPLE[1]] = 1
    subscribe_all(double_opt_in_newsletter, PEOPLE[:3])
    run_worker_until_idle()
    assert sorted(m["To"] for m in smtp_inbox.messages) == [PEOPLE[0], PEOPLE[2]]
    retry = DBTaskResult.objects.get(status=TaskResultStatus.READY)
    assert retry.args_kwargs["kwargs"]["attempt"] == 2
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=retry.enqueued_at)
    run_worker_until_idle()
    [message] = smtp_inbox.to(PEOPLE[1])
    key = retry.args_kwargs["kwargs"]["idempotency_key"]
    assert message["Message-ID"].startswith(f"<{key}.confirmation@")
    assert len(smtp_inbox.messages) == 3, "nobody else got a second email"


def test_an_unreachable_server_retries_every_email_of_the_batch(settings, double_opt_in_newsletter):
    from tests.mail import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    subscribe_all(double_opt_in_newsletter, PEOPLE[:3])
    run_worker_until_idle()
    retries = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    assert [row.args_kwargs["kwargs"]["attempt"] for row in retries] == [2, 2, 2]
    assert not DeadLetter.objects.exists()


def test_a_confirmation_email_goes_ahead_of_the_form_tasks_still_waiting(
    client, double_opt_in_newsletter
):
    """In a burst of sign-ups the worker sends each email before taking the next form:
    workers claim higher priorities first (tests/test_batch_worker.py)."""
    for address in PEOPLE[:3]:
        response = client.post(
            "/subscribe/", {"user_email": address, "newsletter": double_opt_in_newsletter.slug}
        )
        assert response.status_code == 200
    [form_priority] = set(DBTaskResult.objects.values_list("priority", flat=True))
    subscribe(email=PEOPLE[3], newsletter=double_opt_in_newsletter, source="form")

    email = DBTaskResult.objects.get(
        args_kwargs__kwargs__receiver="newsletters.email_confirmation_request"
    )
    assert email.priority > form_priority


def sign_up_from_the_form(newsletter, addresses):
    """Queue each sign-up as a POST to /subscribe/ does: one transaction, one form task."""
    for address in addresses:
        subscribe_queue(
            email=address,
            newsletter=newsletter,
            name="",
            consent=ConsentEvidence(at=timezone.now(), ip="192.0.2.1", user_agent="test"),
        )


def one_batch(size):
    """Claim one batch of up to ``size`` tasks and run it, as a worker's round does."""
    worker = BatchWorker(
        worker_id="w",
        queue_names=["default"],
        excluded_queue_names=[],
        backend_name="default",
        interval=0,
        max_batch_size=size,
        exit_when_idle=True,
        max_tasks=None,
    )
    return worker.run_batch(worker.claim(size))


def test_form_sign_ups_get_their_confirmation_emails_in_the_same_batch(
    smtp_inbox, double_opt_in_newsletter
):
    sign_up_from_the_form(double_opt_in_newsletter, PEOPLE)
    ran = one_batch(len(PEOPLE))
    assert ran == 2 * len(PEOPLE), "each form task and its email"
    assert sorted(message["To"] for message in smtp_inbox.wait_for(len(PEOPLE))) == PEOPLE
    assert smtp_inbox.sessions == 1
    assert not DBTaskResult.objects.exclude(status=TaskResultStatus.SUCCESSFUL).exists()


def test_a_batch_takes_only_the_emails_of_its_own_sign_ups(smtp_inbox, double_opt_in_newsletter):
    sign_up_from_the_form(double_opt_in_newsletter, PEOPLE)
    one_batch(2)
    assert sorted(message["To"] for message in smtp_inbox.wait_for(2)) == PEOPLE[:2]
    waiting = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    assert waiting.count() == len(PEOPLE) - 2, "the other sign-ups' form tasks wait"


def test_a_batch_of_confirmations_reads_each_template_once_whatever_its_size(
    smtp_inbox, double_opt_in_newsletter
):
    EmailTemplate.objects.create(
        name="confirmation_subject.txt",
        newsletter=double_opt_in_newsletter,
        body="Say yes to {{ newsletter.name }}",
    )
    statements = {}
    for size, people in ((2, PEOPLE[:2]), (4, PEOPLE[2:])):
        subscribe_all(double_opt_in_newsletter, people)
        with CaptureQueriesContext(connection) as queries:
            one_batch(size)
        statements[size] = len(queries)
    messages = smtp_inbox.wait_for(len(PEOPLE))
    assert {message["Subject"] for message in messages} == {
        f"Say yes to {double_opt_in_newsletter.name}"
    }, "a stored template still applies to every email of the batch"
    assert statements[2] == statements[4], "no statement per email"


def test_a_hostile_address_in_a_batch_of_sign_ups_loses_none_of_the_others(
    smtp_inbox, double_opt_in_newsletter
):
    hostile = "<script>alert(1)</script>@[127.0.0.1]"
    sign_up_from_the_form(double_opt_in_newsletter, [*PEOPLE[:3], hostile, *PEOPLE[3:]])
    one_batch(len(PEOPLE) + 1)
    assert sorted(message["To"] for message in smtp_inbox.wait_for(len(PEOPLE))) == PEOPLE
    failed = DBTaskResult.objects.filter(status=TaskResultStatus.FAILED)
    assert [row.args_kwargs["kwargs"]["email"] for row in failed] == [hostile]
    assert not Subscription.objects.filter(profile__email=hostile).exists()
