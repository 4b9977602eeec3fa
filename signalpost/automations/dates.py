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


# Parts by position: the pattern (a plain match, far cheaper than capturing) fixes
# where each is; the offset, when there is one, is the last six characters (or a Z).
# A day that does not exist (02-30) is refused by building the 1st of the month, adding
# the days and comparing back; the zone is one the server knows, else UTC. Each CASE
# runs its branch only when its test held, so nothing here can raise, whatever {v} is.
_POSTGRESQL = """(CASE WHEN {v} ~ {pattern} THEN CASE
    WHEN to_char(make_date(substr({v}, 1, 4)::int, substr({v}, 6, 2)::int, 1)
        + (substr({v}, 9, 2)::int - 1), 'YYYY-MM-DD') = left({v}, 10) THEN
    CASE
        WHEN right({v}, 1) = 'Z' THEN {local} AT TIME ZONE 'UTC'
        WHEN length({v}) >= 22 AND substr({v}, length({v}) - 5, 1) IN ('+', '-')
            THEN ({local} AT TIME ZONE 'UTC') - CAST(right({v}, 6) AS interval)
        ELSE {local} AT TIME ZONE (CASE WHEN {z} = ANY({zones}) THEN {z} ELSE 'UTC' END)
    END END END)"""
# The wall-clock time the value names (seconds: 0 when absent; a fraction is ignored).
_POSTGRESQL_LOCAL = """make_timestamp(substr({v}, 1, 4)::int, substr({v}, 6, 2)::int,
    substr({v}, 9, 2)::int,
    CASE WHEN length({v}) >= 16 THEN substr({v}, 12, 2)::int ELSE 0 END,
    CASE WHEN length({v}) >= 16 THEN substr({v}, 15, 2)::int ELSE 0 END,
    CASE WHEN substr({v}, 17, 1) = ':' THEN substr({v}, 18, 2)::float8 ELSE 0 END)"""
_MARKER = re.compile(r"\{(v|z|pattern|zones)\}")


class DateDue(Func):
    """``date_due(value, zone)`` in SQL: the moment a date attribute names, or NULL.

    PostgreSQL: an expression over the JSON attribute's text (a few microseconds a
    row). SQLite: the function ``signalpost_date_due`` (``sqlite_functions_register``),
    ``date_due`` itself.
    """

    function = SQLITE_FUNCTION
    arity = 2
    output_field = DateTimeField()

    def as_postgresql(self, compiler, connection, **extra_context):
        value, zone = (compiler.compile(expression) for expression in self.source_expressions)
        parts = {
            "v": (f"CAST({value[0]} AS text)", list(value[1])),
            "z": (f"CAST({zone[0]} AS text)", list(zone[1])),
            "pattern": ("%s", [f"^{_PATTERN}$"]),
            "zones": ("%s", [_postgresql_zones(connection.alias)]),
        }
        template = _POSTGRESQL.replace("{local}", _POSTGRESQL_LOCAL)
        params: list[Any] = []

        def fill(marker: re.Match[str]) -> str:
            sql, its_params = parts[marker.group(1)]
            params.extend(its_params)
            return sql

        return _MARKER.sub(fill, template), params


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
