"""The attributes a newsletter lets its subscribers edit in the preference center.

Staff declare them on the newsletter, one a line: ``key: Label`` for free text, or
``key: Label = choice one, choice two`` for a choice (``frequency: How often? =
weekly, monthly``). Only declared keys are ever written from the preference center.
"""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from signalpost.accounts.services import CONTROL_CHARACTERS, profile_attributes_check

# Text typed in a form that is plainly a number means the number (as an import's cells).
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,12})?")


def attribute_value_parse(text: str) -> str | int | float:
    """``text`` as a form or CSV cell means it: a plain number is one, the rest is text
    (a leading zero or plus sign, as in a postcode or a phone number, keeps it text)."""
    text = text.strip()
    if NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


EDITABLE_MAX = 20
LABEL_MAX_LENGTH = 100
CHOICES_MAX = 30


@dataclass(frozen=True)
class EditableAttribute:
    key: str
    label: str
    choices: tuple[str, ...]


def _line_parse(line: str) -> EditableAttribute:
    key, colon, rest = line.partition(":")
    label, _, choices_text = rest.partition("=")
    key, label = key.strip(), label.strip()
    if not colon or not key or not label:
        raise ValidationError(f"{line[:60]!r}: write key: Label (and = choices, if any).")
    profile_attributes_check({key: ""})
    if len(label) > LABEL_MAX_LENGTH:
        raise ValidationError(f"{key}: a label has at most {LABEL_MAX_LENGTH} characters.")
    choices = tuple(dict.fromkeys(c.strip() for c in choices_text.split(",") if c.strip()))
    if len(choices) > CHOICES_MAX:
        raise ValidationError(f"{key}: at most {CHOICES_MAX} choices.")
    for choice in choices:
        profile_attributes_check({key: choice})
    return EditableAttribute(key=key, label=label, choices=choices)


def editable_attributes_parse(text: str) -> list[EditableAttribute]:
    """Return the declarations in ``text`` (one a line); raise ``ValidationError`` naming
    the line that is not one."""
    if CONTROL_CHARACTERS.search(text.replace("\r\n", "\n").replace("\n", "")):
        raise ValidationError("No control characters, please.")
    declared = [_line_parse(line) for line in text.splitlines() if line.strip()]
    keys = [attribute.key for attribute in declared]
    if len(set(keys)) != len(keys):
        raise ValidationError("Each key once.")
    if len(declared) > EDITABLE_MAX:
        raise ValidationError(f"At most {EDITABLE_MAX} attributes.")
    return declared


def editable_attributes_validate(text: str) -> None:
    """The model field's validator: ``editable_attributes_parse`` accepts ``text``."""
    editable_attributes_parse(text)
