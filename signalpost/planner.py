"""Steering PostgreSQL's planner for one statement when a table's statistics mislead it.

A table written fast (a burst of sign-ups, a large enrolment) has no statistics, or
stale ones, until autovacuum's next analyze: the planner then takes two equality
conditions for one row and reads every row of a busy queue where an index in the
statement's own order would stop after a batch. ``planner_without`` turns the
misleading plans off for the statements inside it only.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections


@contextmanager
def planner_without(*methods: str, using: str = "default") -> Iterator[None]:
    """On PostgreSQL, turn the planner's ``methods`` (``"enable_bitmapscan"``, ...) off for
    the statements inside (in a transaction), then back to the session's settings:
    ``SET LOCAL`` would otherwise last until the end of the caller's transaction and
    steer its later statements. Elsewhere, nothing."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("; ".join(f"SET LOCAL {method} = off" for method in methods))
    yield
    with connection.cursor() as cursor:
        cursor.execute("; ".join(f"SET LOCAL {method} TO DEFAULT" for method in methods))
