"""The API's JSON bodies: parsed strictly, so that what a service stores is what a database takes.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``1e999`` (a float overflowing to
infinity) as numbers, and PostgreSQL's ``jsonb`` (like SQLite's JSON, and JSON
itself) has no such thing: stored, they were a 500. Integers are read at any
length Python allows, which SQLite would keep only as approximate floats. So a
body is refused, naming the field, for any of those anywhere in it, for nesting
deeper than :data:`DEPTH_MAX`, and when it is not a JSON object.
"""

import json
import math

from ninja.parser import Parser

DEPTH_MAX = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Longer than any 64-bit integer: kept as text rather than converted (Python refuses
# to convert more than 4,300 digits at all).
_INT_DIGITS_MAX = 20


class BodyRefused(ValueError):
    """A JSON body the API does not take; ``field`` is its dotted path, or ``None``."""

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class _Unrepresentable:
    """A number JSON or a 64-bit integer cannot hold, as it was written in the body."""

    def __init__(self, text):
        self.text = text


def _constant(text):
    return _Unrepresentable(text)


def _float(text):
    value = float(text)
    return value if math.isfinite(value) else _Unrepresentable(text)


def _int(text):
    if len(text.lstrip("-")) >= _INT_DIGITS_MAX:
        return _Unrepresentable(text)
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _Unrepresentable(text)


def _path(parts):
    return ".".join(str(part) for part in parts) or None


def _walk(document):
    """Raise :class:`BodyRefused` for the first value of ``document`` the API does not take."""
    pending = [(document, ())]
    while pending:
        value, path = pending.pop()
        if isinstance(value, _Unrepresentable):
            raise BodyRefused(
                f"{value.text[:40]} is not a number this API takes: numbers are finite, "
                f"and whole numbers lie between {INT_MIN} and {INT_MAX}.",
                field=_path(path),
            )
        if isinstance(value, (dict, list)):
            if len(path) >= DEPTH_MAX:
                raise BodyRefused(
                    f"The body nests deeper than {DEPTH_MAX} levels.", field=_path(path)
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            pending.extend((item, (*path, key)) for key, item in items)


def json_body_load(body):
    """Return the JSON object in ``body`` (bytes, UTF-8, -16 or -32); raise :class:`BodyRefused`."""
    try:
        document = json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise BodyRefused(f"The body nests deeper than {DEPTH_MAX} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyRefused(f"The body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BodyRefused("The body must be a JSON object.")
    _walk(document)
    return document


class StrictJSONParser(Parser):
    """ninja's parser, reading bodies with :func:`json_body_load`."""

    def parse_body(self, request):
        return json_body_load(request.body)
