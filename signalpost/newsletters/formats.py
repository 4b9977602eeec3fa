"""The files other newsletter services export, and how each row becomes one of ours.

A format is recognised by its header (``format_recognise``) or named by the person
importing. Its ``map`` turns one row (a dict of lower-cased column names) into the
native row the import checks and writes: ``email``, ``name``, ``consent_at``,
``consent_ip``, and possibly ``attributes`` (the new profile's, as JSON text), ``suppress``
(a ``Suppression.Reason``: the address goes on the suppression list instead) with
``suppressed_at``, or ``skip`` (why the row is left out). A problem with a value raises
``ValidationError`` naming the column: the row is rejected and reported.

Each service's columns, as documented or as its code writes them:

- **Mailchimp** audience exports: one file per status (``subscribed_...``,
  ``unsubscribed_...``, ``cleaned_...``), ``Email Address``, the merge fields (``First
  Name``, ``Last Name``, anything the account added), then ``MEMBER_RATING, OPTIN_TIME,
  OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, LATITUDE, LONGITUDE, GMTOFF, DSTOFF, TIMEZONE, CC,
  REGION, LAST_CHANGED, LEID, EUID, NOTES, TAGS``; the unsubscribed file adds
  ``UNSUB_TIME, UNSUB_CAMPAIGN_TITLE, UNSUB_CAMPAIGN_ID, UNSUB_REASON, UNSUB_REASON_OTHER``,
  the cleaned one ``CLEAN_TIME, CLEAN_CAMPAIGN_TITLE, CLEAN_CAMPAIGN_ID``. Times are
  ``YYYY-MM-DD HH:MM:SS`` (UTC); ``TAGS`` is itself a list of quoted names (``"a","b"``).
- **Substack**: ``email, active_subscription, expiry, plan, email_disabled, created_at,
  first_payment_at``; booleans are ``true``/``false``. ``active_subscription`` is the
  *paid* subscription: a free subscriber has ``false`` and still gets every free post;
  ``email_disabled`` is whether they stopped the emails.
- **Buttondown**: ``email`` (newer exports: ``email_address``), ``notes``, ``metadata``
  (JSON object), ``tags`` (JSON list, or names separated by commas), ``creation_date``,
  ``type`` (``regular``, ``premium``, ``unactivated``, ``unsubscribed``, ...),
  ``ip_address``, ``referrer_url``, ``secondary_id``, ``source``...
- **listmonk**: ``uuid, email, name, attributes, status, created_at, updated_at``;
  ``attributes`` is a JSON object, ``status`` ``enabled``/``disabled``/``blocklisted``,
  times as Go prints them (``2024-03-05 10:11:12.345678 +0000 UTC``).
"""

import csv
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from django.core.exceptions import ValidationError

from signalpost.accounts.services import profile_attributes_check, tag_names_clean
from signalpost.newsletters.attributes import attribute_value_parse
from signalpost.newsletters.models import Suppression

Reason = Suppression.Reason
Row = dict[str, str]
Values = list[str]
Mapped = dict[str, Any]

ATTRIBUTE_VALUE_MAX_LENGTH = 1000
ATTRIBUTES_MAX_LENGTH = 10_000


@dataclass(frozen=True)
class ImportFormat:
    name: str
    label: str
    # The columns (lower case) that must all be there, and one of which must be there.
    required: tuple[str, ...]
    any_of: tuple[str, ...]
    map: Callable[[Row], Mapped]
    email_columns: tuple[str, ...]
    # Makes, for one file's columns, the map of a row given as its list of values (exactly
    # one per column): what ``map`` gives for the row's dict, with what each row would look
    # up again (which file of an export it is, which column holds what) decided once. A
    # dict of 22 columns a row, and the lookups in it, were the largest part of mapping a
    # Mailchimp row (bench/README.md, # Import).
    values_map_for_columns: Callable[[Sequence[str]], Callable[[Values], Mapped]] | None = None
    # Whether ``map`` gives ``consent_at`` as an aware datetime or None (``_time``) and
    # ``consent_ip`` normalised or "" (``_ip``): the import's check takes them as they are.
    consent_normalized: bool = False

    def values_map(self, columns: Sequence[str]) -> Callable[[Values], Mapped] | None:
        """The map of a row's list of values for a file with ``columns``, or ``None`` when
        this format maps dicts only."""
        if self.values_map_for_columns is None:
            return None
        return self.values_map_for_columns(columns)

    def fits(self, columns: Sequence[str]) -> bool:
        present = set(columns)
        return all(c in present for c in self.required) and (
            not self.any_of or any(c in present for c in self.any_of)
        )

    def missing(self, columns: Sequence[str]) -> list[str]:
        present = set(columns)
        missing = [c for c in self.required if c not in present]
        if self.any_of and not any(c in present for c in self.any_of):
            missing.append(" or ".join(self.any_of))
        return missing


def _time(row: Row, column: str) -> datetime | None:
    """The time in ``column`` (ISO 8601 or ``YYYY-MM-DD HH:MM:SS``; UTC when it says
    nothing), or ``None`` when empty."""
    return _time_value(row.get(column, ""), column)


def _time_value(value: str, column: str) -> datetime | None:
    """``_time`` of ``value``, the content of ``column``."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 19:
        # "YYYY-MM-DD HH:MM:SS", as Mailchimp writes every time: parsed as UTC in one call
        # (~0.2 µs against ~0.6 for a parse and datetime.combine below). A value with an
        # offset of its own cannot take a second one, and a date alone parses naive: both
        # go the long way.
        try:
            moment: datetime | None = datetime.fromisoformat(value + "+00:00")
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = _go_time(value)
    if moment is None:
        raise ValidationError(f"{column} is not a time: {value[:40]!r}")
    if moment.tzinfo:
        return moment
    # What moment.replace(tzinfo=UTC) gives: on Python 3.12 that costs ~3.5 µs, this ~0.7,
    # and an export has a time or two a row (bench/README.md, the Mailchimp export).
    return datetime.combine(moment.date(), moment.timetz(), UTC)


# Go's time.Time.String(): "2024-03-05 10:11:12.345678 +0000 UTC" (maybe " m=+0.01").
GO_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? ([+-]\d{4})(?: \S+)*")


def _go_time(value: str) -> datetime | None:
    match = GO_TIME.fullmatch(value)
    if match is None:
        return None
    fraction = (match[2] or ".0")[:7]
    try:
        return datetime.strptime(f"{match[1]}{fraction} {match[3]}", "%Y-%m-%d %H:%M:%S.%f %z")
    except ValueError:
        return None


def _boolean(row: Row, column: str) -> bool:
    value = row.get(column, "").strip().lower()
    if value in {"true", "t", "1", "yes"}:
        return True
    if value in {"false", "f", "0", "no", ""}:
        return False
    raise ValidationError(f"{column} is not true or false: {value[:40]!r}")


# A dotted-quad IPv4 address is already in ipaddress's form: one match instead of a parse
# (ipaddress.ip_address costs ~4 µs, and an export has two IPs a row).
IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)


def ip_normalize(value: str) -> str:
    """``value`` as ``str(ipaddress.ip_address(value))``; raise ``ValueError`` if not an IP."""
    if IPV4.fullmatch(value):
        return value
    return str(ipaddress.ip_address(value))


def _ip(value: str) -> str:
    """An IP address as text, or "" when there is none or it is not one (other services
    record whatever their proxy saw; a missing IP is no reason to refuse the person)."""
    value = value.strip()
    if not value:
        return ""
    try:
        return ip_normalize(value)
    except ValueError:
        return ""


def _json_object(row: Row, column: str) -> dict[str, Any]:
    value = row.get(column, "").strip()
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ValidationError(f"{column} is not JSON: {value[:40]!r}") from None
    if not isinstance(parsed, dict):
        raise ValidationError(f"{column} is not a JSON object")
    return parsed


def _tags(value: str) -> list[str]:
    """Tags as services write them: a JSON list, quoted names (``"a","b"``) or ``a, b``."""
    value = value.strip()
    if not value:
        return []
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(tag).strip() for tag in parsed if str(tag).strip()]
    names = next(csv.reader([value], skipinitialspace=True), [])
    return [name.strip() for name in names if name.strip()]


# An export repeats the same few tag cells on thousands of rows: each is parsed, cleaned
# and made JSON once (a refused one is refused again each time: errors are not kept).
@functools.lru_cache(maxsize=1024)
def _tags_text(value: str) -> str | None:
    """The tags in a cell (``_tags``), cleaned as every tag is, as JSON text (what the
    import's batch carries), or ``None`` for none; a name no tag may have is refused."""
    tags = _tags(value)
    if not tags:
        return None
    try:
        return json.dumps(tag_names_clean(tags))
    except ValidationError as error:
        raise ValidationError(f"tags: {'; '.join(error.messages)}") from None


def _attributes(values: dict[str, Any]) -> str | None:
    """The attributes a new profile gets, as JSON text (what the import's batch carries),
    or ``None`` for none; oversized ones refused."""
    attributes = {key: value for key, value in values.items() if value not in ("", None)}
    if not attributes:
        return None
    for key, value in attributes.items():
        if isinstance(value, str) and len(value) > ATTRIBUTE_VALUE_MAX_LENGTH:
            raise ValidationError(
                f"{key} is {len(value):,} characters; at most {ATTRIBUTE_VALUE_MAX_LENGTH:,}"
            )
    text = json.dumps(attributes)
    if len(text) > ATTRIBUTES_MAX_LENGTH:
        raise ValidationError(f"the attributes are over {ATTRIBUTES_MAX_LENGTH:,} characters")
    return text


def _json_object_maker(fields: Sequence[tuple[str, int]]) -> Callable[[Values], str | None]:
    """For ``fields``, ``(name, index)`` pairs: what ``_attributes`` gives for the dict of
    each name and the text at its index in a row, stripped, for a row given as its list of
    values. Made once per file: each name is made JSON once, and a row's empty fields cost
    a strip each (a Mailchimp row has a merge field or two, mostly empty); the JSON text is
    the same as ``json.dumps``'s, the values' checks and messages ``_attributes``'s."""
    keys = [(name, json.dumps(name) + ": ", index) for name, index in fields]

    def json_object(row: Values) -> str | None:
        parts = []
        for name, key, index in keys:
            value = row[index].strip()
            if value:
                if len(value) > ATTRIBUTE_VALUE_MAX_LENGTH:
                    raise ValidationError(
                        f"{name} is {len(value):,} characters; "
                        f"at most {ATTRIBUTE_VALUE_MAX_LENGTH:,}"
                    )
                parts.append(key + encode_basestring_ascii(value))
        if not parts:
            return None
        text = "{" + ", ".join(parts) + "}"
        if len(text) > ATTRIBUTES_MAX_LENGTH:
            raise ValidationError(f"the attributes are over {ATTRIBUTES_MAX_LENGTH:,} characters")
        return text

    return json_object


# --- Signalpost's own columns -----------------------------------------------------------

NATIVE_EMAIL_COLUMNS = ("email", "e-mail", "email_address", "user_email", "emailaddress")


# A file of only these needs no mapping (the import's fast path); tags and any other
# column are mapped by native_mapper.
NATIVE_PLAIN_COLUMNS = frozenset({*NATIVE_EMAIL_COLUMNS, "name", "consent_at", "consent_ip"})
NATIVE_COLUMNS = NATIVE_PLAIN_COLUMNS | {"tags"}


def native_row(row: Row) -> Mapped:
    return row


def native_mapper(columns: Sequence[str]) -> Callable[[Row], Mapped]:
    """How a Signalpost CSV with more than its own columns maps a row: every other column
    is an attribute of a new profile (named by the column), ``tags`` lists tags.

    Raises ``ValidationError`` for a column name no attribute may have.
    """
    extras = [c for c in dict.fromkeys(columns) if c and c not in NATIVE_COLUMNS]
    profile_attributes_check(dict.fromkeys(extras, ""))
    with_tags = "tags" in columns

    def _native_with_extras(row: Row) -> Mapped:
        values = {column: attribute_value_parse(row.get(column) or "") for column in extras}
        values = {key: value for key, value in values.items() if value != ""}
        if values:
            profile_attributes_check(values)
        mapped: Mapped = dict(row)
        mapped["attributes"] = json.dumps(values) if values else None
        mapped["tags"] = _tags_text(row.get("tags", "")) if with_tags else None
        return mapped

    return _native_with_extras


# --- Mailchimp -----------------------------------------------------------------------------

MAILCHIMP_SYSTEM = frozenset(
    {
        "email address",
        "email",
        "member_rating",
        "optin_time",
        "optin_ip",
        "confirm_time",
        "confirm_ip",
        "latitude",
        "longitude",
        "gmtoff",
        "dstoff",
        "timezone",
        "cc",
        "region",
        "last_changed",
        "leid",
        "euid",
        "notes",
        "tags",
        "unsub_time",
        "unsub_campaign_title",
        "unsub_campaign_id",
        "unsub_reason",
        "unsub_reason_other",
        "clean_time",
        "clean_campaign_title",
        "clean_campaign_id",
        "first name",
        "last name",
        "name",
        "fname",
        "lname",
    }
)
# An unsubscribe Mailchimp recorded from a spam report.
MAILCHIMP_COMPLAINT = re.compile(r"abuse|spam", re.IGNORECASE)


def _mailchimp(row: Row) -> Mapped:
    return _mailchimp_values_for_columns(list(row))([*row.values(), row.get("email", "")])


def _mailchimp_values_for_columns(columns: Sequence[str]) -> Callable[[Values], Mapped]:
    """The Mailchimp ``map`` of a row's list of values (one per column of ``columns``, then
    the address as the file has it): which file of the three it is, which columns are
    merge fields (attributes) and where each value is are decided once, not per row."""
    if "clean_time" in columns or "unsub_time" in columns:
        if "clean_time" in columns:
            reason, column = Reason.CLEANED, "clean_time"
        else:
            reason, column = None, "unsub_time"
        # A small share of an export: its rows are read as dicts.
        return lambda values: _mailchimp_suppressed(
            dict(zip(columns, values, strict=False)), reason=reason, column=column
        )
    # Where each column's value is: the last occurrence, as in a dict of the columns; a
    # missing column reads the "" appended to every row, after its address.
    indexes = {column: number for number, column in enumerate(columns)}

    def at(column: str) -> int:
        return indexes.get(column, len(columns) + 1)

    merge_fields = _json_object_maker(
        [(column, at(column)) for column in indexes if column not in MAILCHIMP_SYSTEM]
    )
    email_at, name_at = at("email address"), at("name")
    first_at, fname_at = at("first name"), at("fname")
    last_at, lname_at = at("last name"), at("lname")
    confirm_time_at, optin_time_at = at("confirm_time"), at("optin_time")
    confirm_ip_at, optin_ip_at, tags_at = at("confirm_ip"), at("optin_ip"), at("tags")

    def mailchimp_subscribed(values: Values) -> Mapped:
        row = [*values, ""]
        first = (row[first_at] or row[fname_at]).strip()
        last = (row[last_at] or row[lname_at]).strip()
        confirmed = _time_value(row[confirm_time_at], "confirm_time")
        return {
            "email": row[email_at],
            "name": f"{first} {last}" if first and last else (first or last or row[name_at]),
            "consent_at": confirmed or _time_value(row[optin_time_at], "optin_time"),
            "consent_ip": (_ip(row[confirm_ip_at]) if confirmed else "") or _ip(row[optin_ip_at]),
            "attributes": merge_fields(row),
            "tags": _tags_text(row[tags_at]),
        }

    return mailchimp_subscribed


def _mailchimp_person(row: Row) -> Mapped:
    name = " ".join(
        part
        for part in (
            (row.get("first name") or row.get("fname") or "").strip(),
            (row.get("last name") or row.get("lname") or "").strip(),
        )
        if part
    ) or row.get("name", "")
    return {"email": row.get("email address", ""), "name": name}


def _mailchimp_suppressed(row: Row, *, reason: str | None, column: str) -> Mapped:
    """A row of the cleaned file (``reason``) or the unsubscribed one (``None``: an
    unsubscribe, or a complaint when its reason says spam or abuse)."""
    mapped = _mailchimp_person(row)
    if reason is None:
        complaint = MAILCHIMP_COMPLAINT.search(row.get("unsub_reason", ""))
        reason = Reason.COMPLAINED if complaint else Reason.UNSUBSCRIBED
    mapped["suppress"] = reason
    mapped["suppressed_at"] = _time(row, column)
    return mapped


# --- Substack ------------------------------------------------------------------------------


def _substack(row: Row) -> Mapped:
    mapped: Mapped = {"email": row.get("email", ""), "name": row.get("name", "")}
    paid = _boolean(row, "active_subscription")
    if _boolean(row, "email_disabled"):
        mapped["suppress"] = Reason.UNSUBSCRIBED
        mapped["suppressed_at"] = None
        return mapped
    mapped["consent_at"] = _time(row, "created_at")
    plan = row.get("plan", "").strip()
    values: dict[str, Any] = {"substack_paid": paid} if paid else {}
    if plan:
        values["substack_plan"] = plan
    if paid and row.get("expiry", "").strip():
        values["substack_paid_until"] = row["expiry"].strip()
    mapped["attributes"] = _attributes(values)
    return mapped


# --- Buttondown ----------------------------------------------------------------------------

BUTTONDOWN_ACTIVE = frozenset(
    {"regular", "premium", "gifted", "churning", "trialed", "past_due", "paused", "comped"}
)
BUTTONDOWN_SUPPRESSED = {
    "unsubscribed": Reason.UNSUBSCRIBED,
    "removed": Reason.UNSUBSCRIBED,
    "undeliverable": Reason.BOUNCED,
    "complained": Reason.COMPLAINED,
    "spammy": Reason.BLOCKLISTED,
}


def _buttondown(row: Row) -> Mapped:
    email = row.get("email") or row.get("email_address") or ""
    mapped: Mapped = {"email": email, "name": row.get("name", "")}
    kind = (row.get("type") or row.get("subscriber_type") or "regular").strip().lower()
    if kind in BUTTONDOWN_SUPPRESSED:
        mapped["suppress"] = BUTTONDOWN_SUPPRESSED[kind]
        mapped["suppressed_at"] = None
        return mapped
    if kind == "unactivated":
        mapped["skip"] = "never confirmed their subscription in Buttondown (type unactivated)"
        return mapped
    if kind not in BUTTONDOWN_ACTIVE:
        raise ValidationError(f"type is not a Buttondown subscriber type: {kind[:40]!r}")
    mapped["consent_at"] = _time(row, "creation_date")
    mapped["consent_ip"] = _ip(row.get("ip_address", ""))
    values: dict[str, Any] = dict(_json_object(row, "metadata"))
    for column in ("notes", "referrer_url"):
        if row.get(column, "").strip():
            values[f"buttondown_{column}"] = row[column].strip()
    mapped["attributes"] = _attributes(values)
    mapped["tags"] = _tags_text(row.get("tags", ""))
    return mapped


# --- listmonk ------------------------------------------------------------------------------


def _listmonk(row: Row) -> Mapped:
    mapped: Mapped = {"email": row.get("email", ""), "name": row.get("name", "")}
    status = row.get("status", "").strip().lower()
    if status == "blocklisted":
        mapped["suppress"] = Reason.BLOCKLISTED
        mapped["suppressed_at"] = _time(row, "updated_at")
        return mapped
    if status == "disabled":
        mapped["skip"] = "disabled in listmonk"
        return mapped
    if status != "enabled":
        raise ValidationError(f"status is not a listmonk status: {status[:40]!r}")
    mapped["consent_at"] = _time(row, "created_at")
    mapped["attributes"] = _attributes(_json_object(row, "attributes"))
    return mapped


FORMATS = {
    f.name: f
    for f in (
        ImportFormat(
            "mailchimp",
            "Mailchimp audience export",
            required=("email address",),
            any_of=("member_rating", "optin_time", "leid", "euid", "confirm_time"),
            map=_mailchimp,
            email_columns=("email address",),
            values_map_for_columns=_mailchimp_values_for_columns,
            consent_normalized=True,
        ),
        ImportFormat(
            "substack",
            "Substack subscriber export",
            required=("email", "active_subscription"),
            any_of=(),
            map=_substack,
            email_columns=("email",),
        ),
        ImportFormat(
            "listmonk",
            "listmonk subscriber export",
            required=("uuid", "email", "attributes", "status"),
            any_of=(),
            map=_listmonk,
            email_columns=("email",),
        ),
        ImportFormat(
            "buttondown",
            "Buttondown subscriber export",
            required=("creation_date",),
            any_of=("email", "email_address"),
            map=_buttondown,
            email_columns=("email", "email_address"),
            consent_normalized=True,
        ),
        ImportFormat(
            "signalpost",
            "Signalpost CSV (email, name, consent_at, consent_ip)",
            required=(),
            any_of=NATIVE_EMAIL_COLUMNS,
            map=native_row,
            email_columns=NATIVE_EMAIL_COLUMNS,
        ),
    )
}
FORMAT_NAMES = tuple(FORMATS)


def format_recognise(columns: Sequence[str]) -> ImportFormat | None:
    """The first format (most specific first, Signalpost's own last) whose columns fit."""
    return next((f for f in FORMATS.values() if f.fits(columns)), None)


def formats_known() -> str:
    return ", ".join(f"{f.name} ({f.label})" for f in FORMATS.values())
