"""Django's PostgreSQL backend, with a health check that needs no round trip.

With ``CONN_HEALTH_CHECKS`` Django checks a persistent connection at the start
of every request by sending ``SELECT 1`` and waiting for the answer: one round
trip per request, in the web process and in a PostgreSQL backend, before any
real work. A connection that sits idle between requests has nothing to read
unless the server has said something: closed it (a restart,
``pg_terminate_backend``, an idle timeout), or sent an error or a notice. So
the check looks at the socket first, without waiting, and sends ``SELECT 1``
only when something has arrived.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != TransactionStatus.IDLE:
            # Inside a transaction, perhaps a failed one: only a query can tell.
            return super().is_usable()
        poller = select.poll()  # not select(): it fails on descriptors past 1023
        try:
            poller.register(connection.fileno(), select.POLLIN)
            arrived = poller.poll(0)
        except (OSError, ValueError):
            return False
        if not arrived:
            return True
        return super().is_usable()
