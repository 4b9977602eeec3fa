"""A cursor that prepares what it runs, for ``signalpost.rows``' single-row statements.

Django's psycopg cursors bind parameters into the statement's text, so PostgreSQL
parses and plans every run afresh. This cursor binds on the server and asks psycopg to
prepare each statement (``prepare=True``), so a connection plans it once (again after a
rollback, on which psycopg deallocates every statement of the connection).
"""

from typing import Any

from django.db.backends.postgresql import base
from psycopg import errors
from psycopg.pq import TransactionStatus

# psycopg 3's cursor, which the stubs type as psycopg2's.
_ServerBindingCursor: Any = base.ServerBindingCursor


class PreparingCursor(_ServerBindingCursor):
    """Django's server-binding cursor, preparing what it runs (``prepare=True``)."""

    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        options.setdefault("prepare", True)
        try:
            return super().execute(query, params, **options)
        except (errors.FeatureNotSupported, errors.InvalidSqlStatementName) as error:
            # A prepared statement gone stale (a migration changed a column it reads:
            # "cached plan must not change result type") or gone (a DEALLOCATE ALL
            # psycopg did not see). In a transaction, its rollback deallocates them all;
            # outside one nothing would, and this connection would fail the same way
            # until it closes: deallocate through psycopg, which forgets them too, and
            # run it once more.
            stale = isinstance(error, errors.InvalidSqlStatementName) or (
                "cached plan" in str(error)
            )
            if not stale or self.connection.info.transaction_status != TransactionStatus.IDLE:
                raise
            self.connection.execute("DEALLOCATE ALL")
            return super().execute(query, params, **options)
