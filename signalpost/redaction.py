"""Keeping people's addresses out of stored free text, and finding them in stored JSON.

Free text that comes from outside (an SMTP server's reply, a webhook endpoint's
response) may echo whatever it was given: the recipient's address, the body with
a person's name. What Signalpost stores of it goes through ``text_redact`` first,
so an erasure has nothing to find there. The erasure still looks (rows written
before this existed), with ``json_mentions`` for JSON columns.
"""

import json
import re
from collections.abc import Collection, Iterable
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import IContains

# Liberal on purpose: anything shaped like an address goes, a few false positives
# (a Message-ID's "<id@host.example>") cost nothing. No quotes, brackets or
# commas, so "{'jane@example.com': ...}" and "<jane@example.com>" keep their frame.
ADDRESS = re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
ADDRESS_REDACTED = "[address]"
VALUE_REDACTED = "[redacted]"


def addresses_redact(text: str) -> str:
    """Return ``text`` with everything shaped like an email address replaced."""
    return ADDRESS.sub(ADDRESS_REDACTED, text)


def _spellings(value: str) -> list[str]:
    """``value`` as typed and as ``json.dumps`` escapes it (how an echoed body holds it)."""
    return list(dict.fromkeys([value, json.dumps(value)[1:-1]]))


def text_redact(text: str, *, values=()) -> str:
    """Return ``text`` without email addresses and without any of ``values`` (a name),
    in any case, as typed or JSON-escaped."""
    spellings = sorted(
        {spelling for value in values if value for spelling in _spellings(value)},
        key=len,
        reverse=True,
    )
    if spellings:
        pattern = "|".join(re.escape(spelling) for spelling in spellings)
        text = re.sub(pattern, VALUE_REDACTED, text, flags=re.IGNORECASE)
    return addresses_redact(text)


# What may stand next to an address inside a longer one (jan@example.com holds
# an@example.com; an@example.com.au holds an@example.com): not a boundary.
_ADDRESS_CHARACTERS = r"\w.!#$%&'*+/=?^`{|}~-"


def _whole(text: str) -> re.Pattern:
    """``text`` as a whole word of an address, in any case."""
    return re.compile(
        rf"(?<![{_ADDRESS_CHARACTERS}]){re.escape(text)}(?![\w-]|\.[\w-])", re.IGNORECASE
    )


def text_forget(value, *, text: str):
    """Return ``value`` (a string, or JSON-like data) with every whole occurrence of
    ``text`` replaced; other addresses that merely contain it stay."""
    pattern = _whole(text)

    def forget(item):
        if isinstance(item, str):
            return pattern.sub(ADDRESS_REDACTED, item)
        if isinstance(item, list):
            return [forget(element) for element in item]
        if isinstance(item, dict):
            return {key: forget(element) for key, element in item.items()}
        return item

    return forget(value)


def json_mentions(field: str, *, text: str):
    """Return a condition matching rows whose JSON column ``field`` holds ``text`` as a
    string value anywhere in it, ignoring case.

    The column is compared as text, so the query reads the whole table: fine for an
    erasure, which is rare, and not for anything that runs per request. The quoted
    JSON string is searched, not the bare text, so that erasing an@example.com
    leaves jan@example.com's rows alone. It is searched as ``json.dumps`` writes it
    (how SQLite stores it, non-ASCII as ``\\u`` escapes) and with the characters
    themselves (how PostgreSQL prints ``jsonb`` as text).
    """
    cast = Cast(field, TextField())
    first, *others = dict.fromkeys([json.dumps(text), json.dumps(text, ensure_ascii=False)])
    condition: Any = IContains(cast, first)  # Q | IContains, as | makes it
    for spelling in others:
        condition |= IContains(cast, spelling)
    return condition


def json_without(data: Any, *, texts: Iterable[str]) -> Any | None:
    """Return JSON-like ``data`` with every list item equal to one of ``texts`` (ignoring
    case) taken out, or ``None`` when the data is about them alone.

    For a row that lists several people (an ``address_suppressed`` call, a
    ``subscriber.suppressed`` event): the others stay. ``None`` when one of ``texts`` is
    a value outside a list, when a list held nothing else, or when ``json_mentions``
    would still find one in what is left (a longer string quoting it): delete the row.
    """
    needles = {text.casefold() for text in texts}

    def is_needle(item: Any) -> bool:
        return isinstance(item, str) and item.casefold() in needles

    def without(item: Any) -> Any:
        if is_needle(item):
            raise _AboutThemAlone
        if isinstance(item, list):
            kept = [element for element in item if not is_needle(element)]
            if item and not kept:
                raise _AboutThemAlone
            return [without(element) for element in kept]
        if isinstance(item, dict):
            return {key: without(element) for key, element in item.items()}
        return item

    try:
        kept = without(data)
    except _AboutThemAlone:
        return None
    dumped = {json.dumps(kept).casefold(), json.dumps(kept, ensure_ascii=False).casefold()}
    quoted = {
        json.dumps(text, ensure_ascii=ascii).casefold()
        for text in needles
        for ascii in (True, False)
    }
    if any(needle in text for needle in quoted for text in dumped):
        return None
    return kept


class _AboutThemAlone(Exception):
    """Raised inside ``json_without``: the data is about the texts alone."""


def json_rows_forget(
    queryset: QuerySet[Any], *, field: str, texts: Collection[str], referring: Q | None = None
) -> int:
    """Delete ``queryset``'s rows, keeping those whose JSON ``field`` lists others too: they
    lose ``texts`` from their lists (``json_without``). Rows ``referring`` to what is
    forgotten all go. Returns how many rows went.

    A row about several people (``address_suppressed``'s addresses of an import batch)
    must still reach the others. Every other row goes in one statement.
    """
    # Their ids, not queryset.exclude(referring): on a row without the key the JSON
    # comparison is NULL, and NOT NULL would leave the row out.
    referring_pks = (
        set(queryset.filter(referring).values_list("pk", flat=True)) if referring else set()
    )
    listing_others = {}
    for pk, data in queryset.values_list("pk", field):
        kept = None if pk in referring_pks else json_without(data, texts=texts)
        if kept is not None:
            listing_others[pk] = kept
    for pk, kept in listing_others.items():
        queryset.model.objects.filter(pk=pk).update(**{field: kept})
    deleted, _ = queryset.exclude(pk__in=list(listing_others)).delete()
    return deleted
