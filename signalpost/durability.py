"""How long a COMMIT waits for its writes to reach the disk."""

import contextlib
from collections.abc import Iterable

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from signalpost.conf import conf


def commit_without_flush(*, using: str = "default") -> None:
    """Let the current transaction's COMMIT return before its WAL is on disk.

    PostgreSQL's ``synchronous_commit = off`` for this transaction alone (``SET
    LOCAL``). The commit stays atomic and consistent, and other transactions see
    it at once; what changes is that a crash of the database server within about
    three ``wal_writer_delay`` (0.6 s by default) after it may lose it, whole.
    Waiting for the flush costs a web worker from 0.2 to several milliseconds per
    commit, the longest single wait of a subscribe POST. Only for writes that are
    harmless to lose and that a person repeats by themselves. A no-op outside a
    transaction and on other databases (SQLite in WAL mode decides per
    connection, with its ``synchronous`` pragma). Also a no-op inside an
    enclosing transaction: the caller decides for its own writes only, and the
    enclosing one may carry writes that must wait. A write that is one statement
    needs no transaction for this: ``insert_select_without_flush``.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or len(connection.atomic_blocks) != 1:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def statement_commits_alone(connection: BaseDatabaseWrapper) -> bool:
    """Whether a statement run now on ``connection`` is a PostgreSQL transaction of its own
    (autocommit, no transaction open), so ``insert_select_without_flush`` applies."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )


def insert_select_without_flush(into: str, casts: Iterable[str]) -> str:
    """``into`` (``INSERT INTO table (columns)``) from one row of parameters, each
    ``%s::cast``, as one statement whose own commit does not wait for the disk.

    Run where ``statement_commits_alone``: it is its own transaction, and it turns
    ``synchronous_commit`` off for that transaction (``set_config(..., true)``), with
    what ``commit_without_flush`` risks, in one round trip where ``BEGIN``, ``SET
    LOCAL``, the INSERT and ``COMMIT`` take four. The CTE runs once because the INSERT
    reads it. Typed, as a SELECT list gives its parameters no column to take a type from.
    """
    typed = ", ".join(f"%s::{cast}" for cast in casts)
    return (
        "WITH _commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
        f"{into} SELECT {typed} FROM _commit"
    )


@contextlib.contextmanager
def asynchronous_commit(*, using="default"):
    """On PostgreSQL, don't wait for the disk on each commit of this connection meanwhile.

    For a stretch of commits rather than one transaction (``commit_without_flush``):
    an issue's batch marks each message sent in a commit of its own. A killed
    worker loses nothing this way (PostgreSQL has the commit); only a crash of
    PostgreSQL itself could forget the last fraction of a second of "sent"
    marks, and those messages would be sent again.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or conf.DATABASE_TRANSACTION_POOLING:
        # Behind a transaction pooler a session setting would outlive this stretch
        # on a server connection another client gets next: each commit waits.
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
