"""The redirect's one write: a hit into the inbox, in one statement and one round trip.

This is the engagement app's persistence module. ``Hit.objects.create`` inside
``transaction.atomic`` with ``commit_without_flush`` costs the redirect four round
trips to PostgreSQL (``BEGIN``, ``SET LOCAL``, ``INSERT``, ``COMMIT``) and the ORM's
compiling of the same ``INSERT`` each time. ``hit_insert`` sends one statement,
written once: on its own (autocommit) it is its own transaction, and it sets
``synchronous_commit`` off for that transaction itself (``set_config(..., true)``),
so its commit does not wait for the disk either. The contract test in
``tests/test_engagement_writes.py`` holds it to the row ``create()`` writes.
"""

import functools
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from signalpost.durability import insert_select_without_flush, statement_commits_alone
from signalpost.engagement.models import Hit

_COLUMNS = ("issue_id", "delivery_id", "kind", "link_index", "agent", "at")


@functools.cache
def _statement(*, asynchronous: bool) -> str:
    """The INSERT, built once per process and kind."""
    meta = Hit._meta
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    into = f"INSERT INTO {table} ({columns})"
    if not asynchronous:
        return f"{into} VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    fields = {field.column: field for field in meta.concrete_fields}
    return insert_select_without_flush(
        into, (fields[name].cast_db_type(connection) or "" for name in _COLUMNS)
    )


def hit_insert(
    *,
    issue_id: int,
    delivery_id: int,
    kind: str,
    link_index: int | None,
    agent: str,
    at: datetime,
) -> None:
    """INSERT one hit, the row ``Hit.objects.create(...)`` would write (no signals: the
    inbox has no receivers).

    Outside a transaction on PostgreSQL its commit does not wait for the disk (see
    ``signalpost.durability.commit_without_flush`` for what that risks); inside one,
    it is a plain INSERT in the caller's transaction, which decides for its writes.
    """
    asynchronous = statement_commits_alone(connection)
    values: list[Any] = [
        issue_id,
        delivery_id,
        kind,
        link_index,
        agent,
        connection.ops.adapt_datetimefield_value(at),  # as DateTimeField does
    ]
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(_statement(asynchronous=asynchronous), values)
