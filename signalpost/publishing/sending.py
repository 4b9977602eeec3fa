"""Recording each message of a batch as sent, off the sender's path.

A batch sends one message after another over one connection
(``signalpost.mail.transport``). Three things keep the sender's own path
short: messages go to smtplib as bytes; MAIL, RCPT and DATA share one round
trip when the server offers PIPELINING; and the "sent" mark of one message
travels to PostgreSQL while the next message's envelope is being accepted
(bench/README.md, Fan-out).
"""

import contextlib
import logging
import uuid

from django.db import DatabaseError, connection
from django.utils import timezone
from psycopg import pq

from signalpost.publishing.models import Delivery
from signalpost.publishing.services import delivery_sent, delivery_sent_sql

logger = logging.getLogger(__name__)


class SentMarks:
    """Marks each message sent while the next one's envelope is on its way, never later.

    On PostgreSQL the UPDATE that marks message N goes out without waiting for
    its answer; ``settle()`` waits for it, and runs before message N+1's data and
    before any other query. So at any moment at most one delivered message is
    unrecorded, as with a statement waited for after each message, but the
    database's round trip is off the sender's path. The UPDATE is prepared once
    per batch, so PostgreSQL does not parse and plan it for every email.
    Elsewhere ``mark()`` simply runs ``delivery_sent``. Use it as a context
    manager: leaving settles the last mark.
    """

    def __init__(self):
        self.pgconn = None
        self.statement = None
        self.waiting = None

    def __enter__(self):
        if connection.vendor != "postgresql":
            return self
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        sql = delivery_sent_sql()
        for number in range(1, sql.count("%s") + 1):
            sql = sql.replace("%s", f"${number}", 1)
        statement = f"signalpost_sent_{uuid.uuid4().hex}".encode()
        if pgconn.prepare(statement, sql.encode()).status == pq.ExecStatus.COMMAND_OK:
            self.pgconn, self.statement = pgconn, statement
        else:
            logger.warning("Cannot prepare the sent mark; marking each message in turn")
        return self

    def __exit__(self, error_type, error, traceback):
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

    def mark(self, delivery, *, message_id):
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
        self.pgconn.send_query_prepared(self.statement, [param.encode() for param in params])
        self.waiting = (delivery, message_id)

    def settle(self):
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
