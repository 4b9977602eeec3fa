"""The contract of ``signalpost.publishing.writes``: a worker records each message as sent
before it starts sending the next one, and the prepared mark stores what ``delivery_sent`` does.

On PostgreSQL the "sent" mark travels while the next message's envelope is
accepted (``SentMarks``); what a killed worker may resend must still be only
the message in flight. The SMTP server here looks into the database, over its
own connection, each time a message's data arrives.
"""

import psycopg
import pytest
from django.db import connection

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from signalpost.publishing.writes import SentMarks, delivery_sent
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import Inbox, smtp_mailers, smtp_server_start
from tests.sending import issue_send_prepared

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL"),
]


def readers_issue(*, slug, readers):
    """An issue of a new newsletter, sent (queued) to ``readers`` active subscribers."""
    letter = make_newsletter(slug=slug, sender_email="editors@example.com")
    for number in range(readers):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject=slug.title(), body_markdown="Hello.")
    assert issue_send_prepared(issue=issue) is True
    assert issue.deliveries.count() == readers
    return issue


class MarkCheckingInbox(Inbox):
    """Notes, at each message's end of data, how many deliveries are marked sent."""

    def __init__(self, dsn):
        super().__init__()
        # Never prepared (psycopg prepares a query run 5 times): behind PgBouncer's
        # transaction pooling a prepared statement stays on whichever server session ran
        # it, where another client (this suite's pg_prepared_statements check) finds it.
        self.database = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        self.sent_before = []

    async def handle_DATA(self, server, session, envelope):
        count = self.database.execute(
            "SELECT count(*) FROM publishing_delivery WHERE status = 'sent'"
        ).fetchone()[0]
        self.sent_before.append((len(self.envelopes), count))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_sent_marks(db):
    """Each "sent" mark takes 50 ms in PostgreSQL: long enough for a race to show."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION signalpost_test_slow_mark() RETURNS trigger AS $$ "
            "BEGIN IF NEW.status = 'sent' THEN PERFORM pg_sleep(0.05); END IF; RETURN NEW; END "
            "$$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER signalpost_test_slow_mark BEFORE UPDATE ON publishing_delivery "
            "FOR EACH ROW EXECUTE FUNCTION signalpost_test_slow_mark()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER signalpost_test_slow_mark ON publishing_delivery")
        cursor.execute("DROP FUNCTION signalpost_test_slow_mark()")


def test_every_earlier_message_is_marked_sent_before_the_next_one_goes(settings, slow_sent_marks):
    params = connection.get_connection_params()
    inbox = MarkCheckingInbox(
        psycopg.conninfo.make_conninfo(
            dbname=params["dbname"],
            host=params.get("host") or "",
            port=params.get("port") or "",
            user=params.get("user") or "",
            password=params.get("password") or "",
        )
    )
    controller, inbox, port = smtp_server_start(inbox)
    settings.MAILERS = smtp_mailers(port)
    try:
        issue = readers_issue(slug="marks", readers=30)
        run_worker_until_idle()
    finally:
        controller.stop()
        inbox.database.close()

    assert len(inbox.envelopes) == 30
    # At the k-th message's data, exactly the k messages before it were recorded.
    assert inbox.sent_before == [(k, k) for k in range(30)]
    sent = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT)
    assert sent.count() == 30
    assert not sent.filter(sent_at__isnull=True).exists()
    assert not sent.filter(message_id="").exists()


def test_marks_fall_back_when_the_prepared_statement_is_lost(smtp_inbox, monkeypatch):
    real_enter = SentMarks.__enter__

    def enter_then_lose_it(self):
        real_enter(self)
        # What a connection pooler in transaction mode can do between statements.
        connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
        return self

    monkeypatch.setattr(SentMarks, "__enter__", enter_then_lose_it)
    issue = readers_issue(slug="lost", readers=5)
    run_worker_until_idle()

    assert sorted(m["To"] for m in smtp_inbox.wait_for(5)) == [
        f"reader{number}@example.com" for number in range(5)
    ]
    assert set(Delivery.objects.filter(issue=issue).values_list("status", flat=True)) == {"sent"}
    issue.refresh_from_db()
    assert issue.status == "sent"


def test_a_prepared_mark_stores_what_delivery_sent_stores():
    issue = readers_issue(slug="same", readers=2)
    first, second = Delivery.objects.filter(issue=issue).order_by("pk")
    Delivery.objects.filter(issue=issue).update(status=Delivery.Status.SENDING)

    delivery_sent(delivery=first, message_id="<first@example.com>")
    with SentMarks() as marks:
        assert marks.pgconn is not None, "the asynchronous path is taken"
        marks.mark(second, message_id="<second@example.com>")

    def stored(delivery):
        delivery.refresh_from_db()
        return (delivery.status, delivery.message_id.split("@")[1], delivery.sent_at.tzinfo)

    assert stored(first) == stored(second) == ("sent", "example.com>", first.sent_at.tzinfo)
    assert abs(first.sent_at - second.sent_at).total_seconds() < 60
    # A delivery no longer being sent is left alone, by both.
    delivery_sent(delivery=first, message_id="<again@example.com>")
    with SentMarks() as marks:
        marks.mark(second, message_id="<again@example.com>")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.message_id, second.message_id) == ("<first@example.com>", "<second@example.com>")


def test_behind_a_transaction_pooler_no_statement_or_setting_outlives_a_transaction(settings):
    from signalpost.durability import asynchronous_commit

    settings.SIGNALPOST_DATABASE_TRANSACTION_POOLING = True
    issue = readers_issue(slug="pooled", readers=2)
    first, second = Delivery.objects.filter(issue=issue).order_by("pk")
    Delivery.objects.filter(issue=issue).update(status=Delivery.Status.SENDING)

    with asynchronous_commit(), SentMarks() as marks:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on", "no session setting"
        assert marks.statement is None, "no named prepared statement"
        marks.mark(first, message_id="<first@example.com>")
        marks.mark(second, message_id="<second@example.com>")

    statuses = set(Delivery.objects.filter(issue=issue).values_list("status", flat=True))
    assert statuses == {"sent"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
