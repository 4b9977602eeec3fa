"""Counting rows the way a page of a list needs: exactly when few, estimated when many.

An exact ``COUNT(*)`` reads every row it counts: over a million subscriptions, a
few hundred milliseconds on every load of a staff list whose paginator only needs
to know "about how many pages". PostgreSQL's planner already estimates the rows
of any query from its statistics (kept by autovacuum's ANALYZE), for the cost of
planning it: a millisecond.
"""

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

# Below this many estimated rows a list is counted exactly: it costs little, and a
# short list (a search's answer) shows its true count.
EXACT_BELOW = 20_000


def rows_estimate(queryset: QuerySet[Any]) -> int | None:
    """Return PostgreSQL's planner estimate of ``queryset``'s rows, or ``None`` elsewhere."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def count_estimated(queryset: QuerySet[Any], *, exact_below: int = EXACT_BELOW) -> int:
    """Return ``queryset``'s row count: exact under ``exact_below`` rows (or on SQLite),
    PostgreSQL's planner estimate above."""
    estimate = rows_estimate(queryset)
    if estimate is None or estimate < exact_below:
        return queryset.count()
    return estimate


class EstimatedCountPaginator(Paginator):
    """A ``Paginator`` whose ``count`` is ``count_estimated``: for the admin's lists of
    millions (``ModelAdmin.paginator``, with ``show_full_result_count = False``)."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            return count_estimated(self.object_list)
        return super().count
