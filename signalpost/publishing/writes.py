"""The sends' database parts: creating a send's deliveries chunk by chunk, and
recording a batch's messages as sent.

This is the publishing app's persistence module. Each message sent is marked by
one UPDATE of its delivery (``delivery_sent``); on PostgreSQL a batch marks
through ``SentMarks``, which drives libpq under psycopg to send that UPDATE
prepared and without waiting for its answer. Nothing else in Signalpost touches
libpq. The contract tests in ``tests/test_publishing_writes.py`` hold both ways
to the same stored row and to "at most the message in flight is unrecorded".
"""

import contextlib
import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone
from psycopg import pq

from signalpost.accounts.models import Profile
from signalpost.conf import conf
from signalpost.newsletters.models import Subscription, Suppression
from signalpost.newsletters.selectors import segment_subscriptions
from signalpost.publishing.models import Delivery
from signalpost.rows import rows_insert_select_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedChunk:
    """What ``deliveries_insert_chunk`` did: deliveries created, the id reached, whether last."""

    created: int
    through_id: int
    last: bool


def deliveries_insert_chunk(
    *,
    issue_id: int,
    newsletter_id: int,
    after_id: int,
    last_id: int,
    until: datetime,
    size: int,
    segment_rules: dict[str, Any] | None = None,
) -> PreparedChunk:
    """Create queued deliveries for the next ``size`` active subscriptions after ``after_id``.

    The subscriptions are ``newsletter_id``'s, active now, with an id at most
    ``last_id`` and subscribed at ``until`` or before (or with no time recorded):
    who was subscribed at the click and still is, and whose address is not on the
    suppression list for the newsletter (a suppression ends the subscriptions it covers;
    this holds even if a row slipped past that). Two statements, both walking
    the (newsletter, status, id) index: the chunk's upper id, then one INSERT ...
    SELECT. On PostgreSQL the SELECT share-locks the subscriptions it reads, so
    an unsubscribe racing the chunk either ends before (and is not read as
    active) or waits for the chunk to commit (and its ``deliveries_skip_for``
    then sees the new delivery). A delivery that exists already is left alone.
    With ``segment_rules`` only the subscriptions the segment's filter matches are read
    (``newsletters.selectors.segment_subscriptions``, as a subquery over the chunk's ids).
    """
    subscription = Subscription._meta
    quote = connection.ops.quote_name
    active = Subscription.Status.ACTIVE
    subscriptions = quote(subscription.db_table)
    bounds = (
        f"SELECT COUNT(*), MAX(c.id) FROM (SELECT s.id FROM {subscriptions} s "
        "WHERE s.newsletter_id = %s AND s.status = %s AND s.id > %s AND s.id <= %s "
        "ORDER BY s.id LIMIT %s) c"
    )
    lock = " FOR SHARE OF s" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(bounds, [newsletter_id, active, after_id, last_id, size])
        found, through_id = cursor.fetchone()
        if not found:
            return PreparedChunk(created=0, through_id=last_id, last=True)
        segment_sql, segment_params = _segment_clause(
            newsletter_id=newsletter_id,
            rules=segment_rules,
            after_id=after_id,
            through_id=through_id,
        )
        insert = (
            f"INSERT INTO {quote(Delivery._meta.db_table)} "
            "(issue_id, profile_id, email, status, attempts, claimed_by, message_id, last_error) "
            "SELECT %s, p.id, p.email, %s, 0, '', '', '' "
            f"FROM {subscriptions} s JOIN {quote(Profile._meta.db_table)} p ON p.id = s.profile_id "
            "WHERE s.newsletter_id = %s AND s.status = %s AND s.id > %s AND s.id <= %s "
            f"AND (s.subscribed_at IS NULL OR s.subscribed_at <= %s) "
            f"AND NOT EXISTS (SELECT 1 FROM {quote(Suppression._meta.db_table)} x "
            "WHERE x.email = p.email AND (x.newsletter_id IS NULL OR x.newsletter_id = %s))"
            f"{segment_sql}"
            f"{lock} ON CONFLICT DO NOTHING"
        )
        cursor.execute(
            insert,
            [
                issue_id,
                Delivery.Status.QUEUED,
                newsletter_id,
                active,
                after_id,
                through_id,
                connection.ops.adapt_datetimefield_value(until),
                newsletter_id,
                *segment_params,
            ],
        )
        created: int = cursor.rowcount
    last = found < size
    return PreparedChunk(created=created, through_id=last_id if last else through_id, last=last)


def deliveries_insert_for(*, issue_id: int, profile_ids: list[int]) -> int:
    """Create a queued delivery of ``issue_id`` for each of ``profile_ids``, to the
    profile's address; one that exists already is left alone. Returns how many were made.

    One INSERT ... SELECT, for an automation step's batch: the same row as
    ``Delivery.objects.bulk_create(..., ignore_conflicts=True)`` without building
    a model instance per person.
    """
    quote = connection.ops.quote_name
    return rows_insert_select_for(
        f"INSERT INTO {quote(Delivery._meta.db_table)} "
        "(issue_id, profile_id, email, status, attempts, claimed_by, message_id, last_error) "
        "SELECT %s, p.id, p.email, %s, 0, '', '', '' "
        f"FROM {quote(Profile._meta.db_table)} p WHERE p.id IN ({{ids}})",
        [issue_id, Delivery.Status.QUEUED],
        profile_ids,
    )


def _segment_clause(
    *, newsletter_id: int, rules: dict[str, Any] | None, after_id: int, through_id: int
) -> tuple[str, tuple[Any, ...]]:
    """`` AND s.id IN (...)`` for the chunk's subscriptions ``rules`` match, or nothing."""
    if rules is None:
        return "", ()
    matching = segment_subscriptions(newsletter_id=newsletter_id, rules=rules).filter(
        id__gt=after_id, id__lte=through_id
    )
    sql, params = matching.order_by().values("id").query.sql_with_params()
    return f" AND s.id IN ({sql})", tuple(params)


def delivery_sent(*, delivery: Delivery, message_id: str) -> None:
    """Record one message as sent: its own statement, so a crash loses at most the next.

    Plain SQL: this runs once per email, and building the ORM's UPDATE cost
    more CPU than sending the message does (bench/README.md, Fan-out). On
    PostgreSQL a batch marks through ``SentMarks`` (below) (prepared, asynchronous)
    and comes here only when that statement cannot be used, so this one is never
    prepared: a connection pooler that loses prepared statements can still run it.
    """
    params = [
        Delivery.Status.SENT,
        message_id[:200],
        connection.ops.adapt_datetimefield_value(timezone.now()),
        delivery.pk,
        Delivery.Status.SENDING,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_delivery_sent_sql(), params)


@functools.cache
def _delivery_sent_sql() -> str:
    quote = connection.ops.quote_name
    fields = ["id", "status", "message_id", "sent_at"]
    # Concrete fields: a column, never None nor a reverse relation (as the stubs allow).
    columns = {
        name: quote(Delivery._meta.get_field(name).column)  # type: ignore[arg-type,union-attr]
        for name in fields
    }
    return (
        f"UPDATE {quote(Delivery._meta.db_table)} SET {columns['status']} = %s, "
        f"{columns['message_id']} = %s, {columns['sent_at']} = %s "
        f"WHERE {columns['id']} = %s AND {columns['status']} = %s"
    )


@functools.cache
def _delivery_sent_sql_numbered() -> str:
    """``_delivery_sent_sql`` with libpq's ``$1``, ``$2``... placeholders."""
    sql = _delivery_sent_sql()
    for number in range(1, sql.count("%s") + 1):
        sql = sql.replace("%s", f"${number}", 1)
    return sql


class SentMarks:
    """Marks each message sent while the next one's envelope is on its way, never later.

    On PostgreSQL the UPDATE that marks message N goes out without waiting for
    its answer; ``settle()`` waits for it, and runs before message N+1's data and
    before any other query. So at any moment at most one delivered message is
    unrecorded, as with a statement waited for after each message, but the
    database's round trip is off the sender's path. The UPDATE is prepared once
    per batch, so PostgreSQL does not parse and plan it for every email; behind
    a transaction pooler (``DATABASE_TRANSACTION_POOLING``) it is sent unnamed,
    parsed each time, as a pooler cannot keep a statement for a client.
    Elsewhere ``mark()`` simply runs ``delivery_sent``. Use it as a context
    manager: leaving settles the last mark.
    """

    def __init__(self) -> None:
        self.pgconn: Any = None  # psycopg.pq.PGconn, while the prepared statement is usable
        self.statement: bytes | None = None
        self.waiting: tuple[Delivery, str] | None = None

    def __enter__(self) -> "SentMarks":
        if connection.vendor != "postgresql":
            return self
        if conf.DATABASE_TRANSACTION_POOLING:
            # A transaction pooler may run the next statement on another server
            # connection, which does not have the statement prepared: unnamed then.
            connection.ensure_connection()
            self.pgconn = connection.connection.pgconn
            return self
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        sql = _delivery_sent_sql_numbered()
        statement = f"signalpost_sent_{uuid.uuid4().hex}".encode()
        if pgconn.prepare(statement, sql.encode()).status == pq.ExecStatus.COMMAND_OK:
            self.pgconn, self.statement = pgconn, statement
        else:
            logger.warning("Cannot prepare the sent mark; marking each message in turn")
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error_type is None:
                self.settle()
            else:
                with contextlib.suppress(Exception):
                    self.settle()  # the error being raised matters more than this one
        finally:
            if self.statement is not None:
                # A broken connection takes its prepared statement with it anyway.
                with contextlib.suppress(Exception):
                    self.pgconn.exec_(b"DEALLOCATE " + self.statement)

    def mark(self, delivery: Delivery, *, message_id: str) -> None:
        self.settle()
        if self.pgconn is None:
            delivery_sent(delivery=delivery, message_id=message_id)
            return
        params = [
            Delivery.Status.SENT.value,
            message_id[:200],
            timezone.now().isoformat(),
            str(delivery.pk),
            Delivery.Status.SENDING.value,
        ]
        # libpq's asynchronous call: it returns once the query is written.
        encoded = [param.encode() for param in params]
        if self.statement is None:
            self.pgconn.send_query_params(_delivery_sent_sql_numbered().encode(), encoded)
        else:
            self.pgconn.send_query_prepared(self.statement, encoded)
        self.waiting = (delivery, message_id)

    def settle(self) -> None:
        """Wait until the last mark is in the database; raise ``DatabaseError`` if it failed.

        A mark the prepared statement could not make (a connection pooler that
        lost it, say) is made once more the ordinary way, and the rest of the
        batch goes that way too: the message was delivered, and a mark that
        keeps failing would otherwise send it again on every retry.
        """
        if self.waiting is None:
            return
        delivery, message_id = self.waiting
        self.waiting = None
        errors = []
        while (result := self.pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:
                errors.append((result.error_message or b"").decode(errors="replace"))
        if not errors:
            return
        logger.warning("The prepared sent mark failed (%s); marking the ordinary way", errors[0])
        self.pgconn = None
        try:
            delivery_sent(delivery=delivery, message_id=message_id)
        except Exception as error:
            raise DatabaseError(f"could not mark a delivery sent: {errors[0]}") from error
