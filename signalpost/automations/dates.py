"""When a date attribute is reached: one rule, in Python and as SQL over the JSON attribute.

A date attribute is text in one of these forms (ISO 8601, years 1000 to 2999):

- ``2026-12-10``: midnight that day in the person's ``time_zone`` attribute (an IANA
  name such as ``Europe/Paris``), else UTC;
- ``2026-12-10T09:30`` or ``2026-12-10 09:30:15`` (a fraction of a second is ignored):
  that time in the person's time zone, else UTC;
- the same with ``Z`` or an offset (``+01:00``, ``-05:30``): that moment.

Anything else (another format, a day that does not exist, a number) is no date:
the person is skipped, never an error. ``date_due`` is the rule in Python (the
reference, and SQLite's ``signalpost_date_due`` function); ``DateDue`` is the same
rule as an expression, so the workers find everyone due with one query.
"""

import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db.models import DateTimeField, Func

_PATTERN = (
    r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.[0-9]{1,6})?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
_DATE = re.compile(_PATTERN)
SQLITE_FUNCTION = "signalpost_date_due"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone(name: object) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name if isinstance(name, str) and name in _zones() else "UTC")


def date_due(value: object, zone_name: object = None) -> datetime | None:
    """The moment (UTC) the date attribute ``value`` names for a person whose
    ``time_zone`` attribute is ``zone_name``; None when ``value`` is no date."""
    if not isinstance(value, str):
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:  # 2026-02-30
        return None
    if offset is None:
        return local.replace(tzinfo=_zone(zone_name)).astimezone(UTC)
    if offset == "Z":
        return local.replace(tzinfo=UTC)
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    shift = timedelta(hours=hours, minutes=minutes)
    return (local - shift if offset[0] == "+" else local + shift).replace(tzinfo=UTC)


def _sqlite_date_due(value: object, zone_name: object) -> str | None:
    """``date_due`` as SQLite stores a datetime: naive UTC text, which sorts by time."""
    due = date_due(value, zone_name)
    return None if due is None else str(due.replace(tzinfo=None))


def sqlite_functions_register(connection: Any) -> None:
    """Give a new SQLite connection ``signalpost_date_due(value, zone)``."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            SQLITE_FUNCTION, 2, _sqlite_date_due, deterministic=True
        )


@lru_cache(maxsize=4)
def _postgresql_zones(alias: str) -> list[str]:
    """The zones both Python and the server know (AT TIME ZONE refuses the others).

    Read once per process: the view reads the server's zone files (a quarter second).
    """
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT name FROM pg_timezone_names")
        known = {name for (name,) in cursor.fetchall()}
    return sorted(known & _zones())


# regexp_match gives the parts, once (OFFSET 0 keeps the planner from copying it into
# each of the dozen places that read a part: 8 times slower); the day is added to the
# 1st of the month, so a day that does not exist (02-30) comes out as another date and
# is refused by comparing back; the zone is one the server knows, else UTC. Nothing
# here can raise, whatever the value.
_POSTGRESQL = """(SELECT CASE
    WHEN parsed.local IS NULL OR to_char(parsed.local, 'YYYY-MM-DD') <> left(parsed.v, 10)
        THEN NULL
    WHEN parsed.m[7] IS NULL THEN parsed.local AT TIME ZONE parsed.zone
    ELSE (parsed.local AT TIME ZONE 'UTC')
        - CAST(CASE WHEN parsed.m[7] = 'Z' THEN '00:00' ELSE parsed.m[7] END AS interval)
    END
FROM (SELECT matched.v, matched.m, matched.zone, CASE WHEN matched.m IS NULL THEN NULL
        ELSE make_timestamp(matched.m[1]::int, matched.m[2]::int, 1,
            coalesce(matched.m[4], '0')::int, coalesce(matched.m[5], '0')::int,
            coalesce(matched.m[6], '0')::float8)
            + (matched.m[3]::int - 1) * interval '1 day' END AS local
    FROM (SELECT raw.v, regexp_match(raw.v, %s) AS m,
            CASE WHEN raw.z = ANY(%s) THEN raw.z ELSE 'UTC' END AS zone
        FROM (SELECT CAST({value} AS text) AS v, CAST({zone} AS text) AS z) AS raw
        OFFSET 0
    ) AS matched
) AS parsed)"""


class DateDue(Func):
    """``date_due(value, zone)`` in SQL: the moment a date attribute names, or NULL.

    PostgreSQL: an expression over the JSON attribute's text. SQLite: the function
    ``signalpost_date_due`` (``sqlite_functions_register``), ``date_due`` itself.
    """

    function = SQLITE_FUNCTION
    arity = 2
    output_field = DateTimeField()

    def as_postgresql(self, compiler, connection, **extra_context):
        (value_sql, value_params), (zone_sql, zone_params) = (
            compiler.compile(expression) for expression in self.source_expressions
        )
        sql = _POSTGRESQL.format(value=value_sql, zone=zone_sql)
        params = [
            f"^{_PATTERN}$",
            _postgresql_zones(connection.alias),
            *value_params,
            *zone_params,
        ]
        return sql, params


class DateDay(Func):
    """The first ten characters of a date attribute (``2026-12-10``), compared as bytes:
    the day a valid date starts with. Cheap, so the workers' scan narrows to the few
    days that can be due before it computes ``DateDue`` (``days_around``)."""

    function = "substr"
    template = "substr(%(expressions)s, 1, 10)"
    arity = 1

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f'(left(CAST({sql} AS text), 10) COLLATE "C")', params


def days_around(*, earliest: datetime, latest: datetime) -> tuple[str, str]:
    """The first and last day (``DateDay``) of the dates whose moment can fall between
    ``earliest`` and ``latest``: a day's moments run from its midnight 24 hours
    ahead (an offset or zone up to +23:59) to its last minute 24 hours behind; a day
    more each way for good measure."""
    first: date = (earliest - timedelta(days=3)).date()
    last: date = (latest + timedelta(days=2)).date()
    return first.isoformat(), last.isoformat()
