"""The segments' filter language: checking a filter, and compiling it to one ORM query.

A filter is JSON, never SQL::

    {"match": "all",            # or "any"
     "conditions": [
        {"type": "attribute", "key": "plan", "op": "equals", "value": "pro"},
        {"type": "attribute", "key": "city", "op": "contains", "value": "berlin"},
        {"type": "attribute", "key": "age", "op": "greater", "value": 30},
        {"type": "attribute", "key": "trial_end", "op": "less", "value": "2027-01-01"},
        {"type": "attribute", "key": "company", "op": "exists"},
        {"type": "tag", "op": "has", "value": "vip"},          # or "has_not"
        {"type": "subscribed", "op": "before", "value": "2026-06-01T00:00:00Z"},  # or "after"
        {"type": "source", "op": "equals", "value": "import"},
        {"type": "engagement", "op": "clicked", "value": 3}]}  # or opened, not_clicked...

An engagement condition counts the human clicks (opens) of the newsletter's last
``value`` sent issues (``engagement.selectors``); a newsletter that keeps engagement
counts only has no row naming a person, so such a condition is refused for it.

``segment_rules_check`` returns the filter in its one stored form or raises
``ValidationError`` naming the condition; ``segment_filter`` turns a checked filter
into a ``Q`` over one newsletter's ``Subscription`` rows. Keys and values reach the
database only as query parameters. On PostgreSQL ``equals`` and ``exists`` read the GIN
index on the profiles' attributes (``@>`` and ``?``), tags read the (tag, profile) index
and engagement the (issue, kind, is_human, profile) one.
"""

import functools
import operator
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import CharField, Exists, F, Func, JSONField, OuterRef, Q, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.lookups import GreaterThan, LessThan
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from signalpost.accounts.models import ProfileTag
from signalpost.accounts.services import profile_attributes_check, tag_name_clean
from signalpost.newsletters.models import Newsletter, Subscription

CONDITIONS_MAX = 20
MATCHES = ("all", "any")
OPERATORS = {
    "attribute": ("equals", "contains", "greater", "less", "exists"),
    "tag": ("has", "has_not"),
    "subscribed": ("before", "after"),
    "source": ("equals",),
    "engagement": ("clicked", "opened", "not_clicked", "not_opened"),
}
# "clicked any of the last N issues": N from 1 to this.
ENGAGEMENT_ISSUES_MAX = 100
_ENGAGEMENT_KINDS = {
    "clicked": "click",
    "opened": "open",
    "not_clicked": "click",
    "not_opened": "open",
}
# Who clicked or opened a newsletter's last N issues is the engagement app's to say, a
# layer above this one: it hands its selector over when it is ready (engagement/apps.py),
# select(newsletter_id=, count=, kind=) -> a subquery of profile ids.
_ENGAGED: dict[str, Callable[..., Any]] = {}


def engaged_profiles_provide(select: Callable[..., Any]) -> None:
    """Let engagement conditions find their people with ``select`` (engagement does, at ready)."""
    _ENGAGED["select"] = select


ATTRIBUTES = "profile__attributes"


def _refuse(number: int, message: str) -> ValidationError:
    return ValidationError({"rules": f"condition {number}: {message}"})


def _attribute_check(number: int, condition: dict[str, Any]) -> dict[str, Any]:
    key, op, value = condition.get("key"), condition["op"], condition.get("value")
    try:
        profile_attributes_check({key: value if op != "exists" else None})
    except ValidationError as error:
        raise _refuse(number, error.message_dict["attributes"][0]) from None
    if op == "exists":
        return {"type": "attribute", "key": key, "op": op}
    if value is None:
        raise _refuse(number, f"{op} needs a value.")
    if op == "contains" and not isinstance(value, str):
        raise _refuse(number, "contains compares text: give a text value.")
    comparable = isinstance(value, (int, float, str)) and not isinstance(value, bool)
    if op in ("greater", "less") and not comparable:
        raise _refuse(number, f"{op} compares a number or a date (2026-12-31).")
    return {"type": "attribute", "key": key, "op": op, "value": value}


def _parsed_moment(text: str) -> datetime | None:
    if len(text) > 40:
        return None
    try:
        if moment := parse_datetime(text):
            return moment
        day = parse_date(text)
    except ValueError:  # well formed, but no such day or time
        return None
    return datetime.combine(day, time()) if day else None


def _moment(number: int, value: object) -> str:
    moment = _parsed_moment(value) if isinstance(value, str) else None
    if moment is None:
        raise _refuse(number, "subscribed needs a date or time (2026-06-01, 2026-06-01T09:00Z).")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.isoformat()


def _issues_count(number: int, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        value = 0
    if not 1 <= value <= ENGAGEMENT_ISSUES_MAX:
        raise _refuse(
            number,
            f"engagement counts the last 1 to {ENGAGEMENT_ISSUES_MAX} issues: "
            "give a whole number as value.",
        )
    return value


def _condition_check(number: int, condition: object) -> dict[str, Any]:
    if not isinstance(condition, dict):
        raise _refuse(number, "a condition is a JSON object.")
    kind, op = condition.get("type"), condition.get("op")
    if not isinstance(kind, str) or kind not in OPERATORS:
        raise _refuse(number, f"type is one of {', '.join(OPERATORS)}.")
    if op not in OPERATORS[kind]:
        raise _refuse(number, f"op for {kind} is one of {', '.join(OPERATORS[kind])}.")
    value = condition.get("value")
    if kind == "attribute":
        return _attribute_check(number, condition)
    if kind == "tag":
        try:
            return {"type": kind, "op": op, "value": tag_name_clean(value)}
        except ValidationError as error:
            raise _refuse(number, error.message_dict["tags"][0]) from None
    if kind == "subscribed":
        return {"type": kind, "op": op, "value": _moment(number, value)}
    if kind == "engagement":
        return {"type": kind, "op": op, "value": _issues_count(number, value)}
    if value not in Subscription.Source.values:
        raise _refuse(number, f"source is one of {', '.join(Subscription.Source.values)}.")
    return {"type": kind, "op": op, "value": value}


def _newsletter_check(newsletter: Newsletter, conditions: list[dict[str, Any]]) -> None:
    for number, condition in enumerate(conditions, start=1):
        if condition["type"] == "engagement" and newsletter.engagement_aggregate_only:
            raise _refuse(
                number,
                f"{newsletter} keeps engagement counts only, never who clicked or opened, "
                "so an engagement condition could match nobody.",
            )


def segment_rules_check(rules: object, *, newsletter: Newsletter | None = None) -> dict[str, Any]:
    """Return ``rules`` in the form stored, or raise ``ValidationError`` (on ``rules``).

    With ``newsletter``, also refuse what cannot mean anything for that newsletter
    (an engagement condition where it keeps counts only)."""
    if not isinstance(rules, dict):
        raise ValidationError({"rules": "The filter is a JSON object: match and conditions."})
    unknown = sorted(set(rules) - {"match", "conditions"})
    if unknown:
        raise ValidationError({"rules": f"unknown keys: {', '.join(map(str, unknown))[:100]}."})
    match = rules.get("match", "all")
    if match not in MATCHES:
        raise ValidationError({"rules": "match is all or any."})
    conditions = rules.get("conditions", [])
    if not isinstance(conditions, list):
        raise ValidationError({"rules": "conditions is a list."})
    if len(conditions) > CONDITIONS_MAX:
        raise ValidationError({"rules": f"at most {CONDITIONS_MAX} conditions."})
    checked = [_condition_check(number, c) for number, c in enumerate(conditions, start=1)]
    if newsletter is not None:
        _newsletter_check(newsletter, checked)
    return {"match": match, "conditions": checked}


class _AttributeType(Func):
    """The JSON type of a profile's attribute ``key``: number, string, boolean... or NULL.

    PostgreSQL and SQLite only (each has its JSON type function); the segments'
    greater/less conditions need it.
    """

    output_field = CharField()

    def __init__(self, key: str) -> None:
        super().__init__(F(ATTRIBUTES))
        self.key = key

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({sql} -> %s)", [*params, self.key]

    def as_sqlite(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        path = connection.ops.compile_json_path([self.key])
        kind = f"json_type({sql}, %s)"
        return (
            f"CASE {kind} WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' ELSE {kind} END",
            [*params, path, *params, path],
        )


def _json(value: object) -> Value:
    return Value(value, output_field=JSONField())


def _key_lookup(transform: Any, lookup: str, value: object) -> Any:
    return transform.get_lookup(lookup)(transform, value)


def _attribute_condition(key: str, op: str, value: Any) -> Q:
    if op == "exists":
        return Q(**{f"{ATTRIBUTES}__has_key": key})
    if op == "equals":
        if connection.features.supports_json_field_contains:
            # attributes @> '{"key": value}': the GIN index answers it.
            return Q(**{f"{ATTRIBUTES}__contains": {key: value}})
        return Q(_key_lookup(KeyTransform(key, ATTRIBUTES), "exact", _json(value)))
    if op == "contains":
        return Q(_key_lookup(KeyTextTransform(key, ATTRIBUTES), "icontains", value))
    lookup = "gt" if op == "greater" else "lt"
    if isinstance(value, str):
        # Text (an ISO date) compares as text, and only with text.
        text_lookup = GreaterThan if op == "greater" else LessThan
        compared = text_lookup(KeyTextTransform(key, ATTRIBUTES), Value(value))
        return Q(compared) & Q(_key_lookup(_AttributeType(key), "exact", "string"))
    # jsonb against jsonb where JSON is a type of its own (PostgreSQL: no cast that a text
    # value could fail); SQLite's JSON_EXTRACT gives a number to compare with a number.
    bound = _json(value) if connection.features.has_native_json_field else value
    compared = _key_lookup(KeyTransform(key, ATTRIBUTES), lookup, bound)
    return Q(compared) & Q(_key_lookup(_AttributeType(key), "exact", "number"))


def _engagement_condition(newsletter_id: int, op: str, issues: int) -> Q:
    select = _ENGAGED["select"]
    engaged = Q(
        profile_id__in=select(newsletter_id=newsletter_id, count=issues, kind=_ENGAGEMENT_KINDS[op])
    )
    return ~engaged if op.startswith("not_") else engaged


def _condition(condition: dict[str, Any], newsletter_id: int) -> Q:
    kind, op, value = condition["type"], condition["op"], condition.get("value")
    if kind == "attribute":
        return _attribute_condition(condition["key"], op, value)
    if kind == "tag":
        tagged = Exists(
            ProfileTag.objects.filter(profile_id=OuterRef("profile_id"), tag__name=value)
        )
        return Q(tagged) if op == "has" else ~Q(tagged)
    if kind == "subscribed":
        moment = datetime.fromisoformat(str(value))
        return Q(subscribed_at__lt=moment) if op == "before" else Q(subscribed_at__gt=moment)
    if kind == "engagement":
        return _engagement_condition(newsletter_id, op, condition["value"])
    return Q(source=value)


def segment_filter(rules: dict[str, Any], *, newsletter_id: int) -> Q:
    """The ``Q`` over newsletter ``newsletter_id``'s ``Subscription`` rows that the
    checked ``rules`` stand for (``Q()``: all)."""
    conditions = [_condition(condition, newsletter_id) for condition in rules.get("conditions", [])]
    if not conditions:
        return Q()
    combine = operator.and_ if rules.get("match", "all") == "all" else operator.or_
    return functools.reduce(combine, conditions)
