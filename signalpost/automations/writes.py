"""The automations' database parts that run per batch: set-based SQL behind one function.

This is the automations app's persistence module, as ``publishing.writes`` is the
publishing app's. ``tests/test_automations.py`` holds the engine to its outcome.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from signalpost.accounts.models import Profile
from signalpost.automations.models import Automation, Enrollment, Step, StepRun
from signalpost.planner import planner_without
from signalpost.rows import rows_deferred_work, rows_insert_select_for

# The most ids in one statement: an import's chunk (SQLite allows 32,766 parameters).
_CHUNK = 1000


def enrollments_claim_due(
    *, claimer: str, now: datetime, lost_before: datetime, limit: int
) -> list[Enrollment]:
    """Claim for ``claimer`` up to ``limit`` enrollments due at ``now`` (the earliest
    first) of active automations, unclaimed or claimed before ``lost_before``; return
    them, read by the same statement.

    One ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``: on PostgreSQL the
    SELECT locks what it takes and skips rows other workers are claiming (``FOR
    UPDATE SKIP LOCKED``), so workers never wait for each other; SQLite has one
    writer at a time and runs the same statement without the clause. One statement
    where a SELECT, an UPDATE by the ids and a read of the rows were three.

    On PostgreSQL the transaction also tells the planner to read the due index in
    its order (no bitmap scan, no sort): on a table not analyzed since a large
    enrolment (the first minute of one, or any server without autovacuum) it
    estimated a handful of due rows, then read and sorted every due row on disk
    for each batch (27-87 ms at 100,000 people, against 0.6 ms along the index).
    """
    quote = connection.ops.quote_name
    table = quote(Enrollment._meta.db_table)
    columns = ", ".join(
        quote(field.column) for field in Enrollment._meta.concrete_fields if field.column
    )
    locking = (
        " FOR UPDATE OF e SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else ""
    )
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {table} SET claimed_by = %s, claimed_at = %s WHERE id IN ("
        f"SELECT e.id FROM {table} e JOIN {quote(Automation._meta.db_table)} a "
        "ON a.id = e.automation_id WHERE e.status = %s AND e.next_run_at <= %s "
        "AND a.status = %s AND (e.claimed_by = '' OR e.claimed_at < %s) "
        f"ORDER BY e.next_run_at LIMIT %s{locking}) RETURNING {columns}"
    )
    params = [
        claimer,
        adapt(now),
        Enrollment.Status.ACTIVE,
        adapt(now),
        Automation.Status.ACTIVE,
        adapt(lost_before),
        limit,
    ]
    with transaction.atomic(), planner_without("enable_bitmapscan", "enable_sort"):
        claimed = list(Enrollment.objects.raw(sql, params))
    return sorted(claimed, key=lambda enrollment: enrollment.pk)


def enrollments_move(*, ids: list[int], **fields: Any) -> int:
    """Set ``fields`` on the enrollments ``ids`` still in progress (a batch's move to
    its next step); return how many were written. Ended ones are left alone.

    Read by the primary key on PostgreSQL whatever the statistics: the planner took
    ``status = 'active'`` for the due index's predicate and read every active
    row (17-43 ms per batch of 500 at 100,000 people, EXPLAIN ANALYZE on a table
    not analyzed since its enrolment), or scanned the table, where the 500 ids
    take 4 ms. So "in progress" is said as "neither finished nor exited" (the
    same rows: a status is one of the three), and the transaction turns
    sequential scans off for the statement.
    """
    ended = [Enrollment.Status.FINISHED, Enrollment.Status.EXITED]
    with transaction.atomic(), planner_without("enable_seqscan"):
        return Enrollment.objects.filter(pk__in=ids).exclude(status__in=ended).update(**fields)


def step_runs_insert(
    *, step: Step, enrollment_ids: list[int], ran_at: datetime, outcome: str = "done"
) -> int:
    """Record that ``step`` ran for ``enrollment_ids`` with ``outcome``; an enrollment
    with a record of the step already keeps it. One INSERT ... SELECT for the batch
    (a wait step's people, say); returns how many were recorded."""
    quote = connection.ops.quote_name
    return rows_insert_select_for(
        f"INSERT INTO {quote(StepRun._meta.db_table)} "
        "(enrollment_id, step_id, position, kind, outcome, ran_at) "
        "SELECT e.id, %s, %s, %s, %s, %s "
        f"FROM {quote(Enrollment._meta.db_table)} e WHERE e.id IN ({{ids}})",
        [
            step.pk,
            step.position,
            step.kind,
            outcome,
            connection.ops.adapt_datetimefield_value(ran_at),
        ],
        enrollment_ids,
    )


def enrollments_insert(
    *, automation_id: int, profile_ids: list[int], next_run_at: datetime, enrolled_at: datetime
) -> int:
    """Start ``profile_ids`` in automation ``automation_id`` at its first step, due at
    ``next_run_at``; someone enrolled already is left alone. Returns how many started.

    One INSERT ... SELECT whose row count is the answer: the same rows as
    ``bulk_create(..., ignore_conflicts=True)`` without an instance per person, and
    without counting the automation's enrollments before and after (a count that
    grew with every chunk of an import: 100,000 people read 10 million rows).
    """
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    insert_select = (
        f"INSERT INTO {quote(Enrollment._meta.db_table)} "
        "(automation_id, profile_id, status, position, next_run_at, attempts, claimed_by, "
        "exit_reason, trigger_date, enrolled_at) "
        "SELECT %s, p.id, %s, 0, %s, 0, '', '', '', %s "
        f"FROM {quote(Profile._meta.db_table)} p WHERE p.id IN ({{ids}})"
    )
    params = [automation_id, Enrollment.Status.ACTIVE, adapt(next_run_at), adapt(enrolled_at)]
    return sum(
        rows_insert_select_for(insert_select, params, profile_ids[start : start + _CHUNK])
        for start in range(0, len(profile_ids), _CHUNK)
    )


def enrollments_enroll_later(
    *, key: Any, profile_id: int, enroll: Callable[[list[int]], Any]
) -> bool:
    """Inside a worker's batch of sign-ups (``rows.rows_deferred``), queue ``profile_id``
    to be enrolled with the others of ``key`` by one ``enroll(profile_ids)`` at the
    batch's end, in its transaction, and return ``True``; outside one, return ``False``
    (the caller enrolls now)."""
    return rows_deferred_work(key, profile_id, enroll)
