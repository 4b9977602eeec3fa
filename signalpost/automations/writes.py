"""The automations' database parts that run per batch: set-based SQL behind one function.

This is the automations app's persistence module, as ``publishing.writes`` is the
publishing app's. ``tests/test_automations.py`` holds the engine to its outcome.
"""

from datetime import datetime

from django.db import connection

from signalpost.automations.models import Enrollment, Step, StepRun
from signalpost.publishing.models import Delivery
from signalpost.rows import rows_insert_select_for


def step_runs_insert_sent(*, step: Step, enrollment_ids: list[int], ran_at: datetime) -> int:
    """Record that email ``step`` ran for ``enrollment_ids``, each with its delivery's
    status as the outcome; an enrollment with a record of the step already keeps it.

    One INSERT ... SELECT joining each enrollment to its delivery of the step's issue:
    the same rows as a ``StepRun`` per person, without building an instance each.
    Returns how many were recorded.
    """
    quote = connection.ops.quote_name
    return rows_insert_select_for(
        f"INSERT INTO {quote(StepRun._meta.db_table)} "
        "(enrollment_id, step_id, position, kind, outcome, ran_at) "
        "SELECT e.id, %s, %s, %s, d.status, %s "
        f"FROM {quote(Enrollment._meta.db_table)} e "
        f"JOIN {quote(Delivery._meta.db_table)} d "
        "ON d.issue_id = %s AND d.profile_id = e.profile_id WHERE e.id IN ({ids})",
        [
            step.pk,
            step.position,
            step.kind,
            connection.ops.adapt_datetimefield_value(ran_at),
            step.issue_id,
        ],
        enrollment_ids,
    )
