"""Render an email template once for a batch of people, then fill in each person's values.

A batch of subscription emails (``emails.emails_send``) renders the same three
templates for every person; only a few strings differ (the address, the name,
the signed links). ``merged`` renders a template once with stand-in tokens for
those strings, finishes it (the CSS inlined) once, and gives each person that
text with their own values put in place of the tokens: what a full render would
give, at the cost of a string join.

It only does so when it can prove the template treats the values as opaque text.
Each template is rendered twice, with two sets of tokens of different lengths,
the second made of characters that HTML escaping changes; the template is
merged only if

- every token came out whole, escaped everywhere or nowhere (so each person's
  value is put in escaped the same way, ``django.utils.html.escape``),
- putting the second tokens in place of the first in the first render gives
  exactly the second render (no filter cut, cased, measured or encoded a value),
- it compared no value with anything (``{% if profile.name == "Sam" %}``) and
  read nothing of the person beyond the values given (``profile.attributes``),
- the tokens survived the finishing step.

Otherwise that template is rendered in full for each person, as before. Which
values are empty is part of the key, so ``{% if profile.name %}`` takes each
person's branch. Empty values are given to the template as they are.
"""

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape

# Tokens differ between processes: a value a person typed cannot be taken for one.
_NONCE = secrets.token_hex(6)
# What a template that cannot be merged is memoised as.
_REFUSED = object()


@dataclass
class Probe:
    """Set when a template did something with a token other than print it."""

    refused: bool = False


class _Token(str):
    """A stand-in for one person's value: printing it is all a merged template may do;
    comparing, measuring, indexing or iterating it refuses the merge."""

    probe: Probe

    def __new__(cls, text: str, probe: Probe) -> "_Token":
        token = super().__new__(cls, text)
        token.probe = probe
        return token

    def _refuse(self, *args: Any) -> Any:
        self.probe.refused = True
        return NotImplemented

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = str.__hash__

    def __bool__(self) -> bool:
        return str.__len__(self) > 0  # a test for truth is not a look inside (not __len__)

    def __len__(self) -> int:
        self.probe.refused = True
        return str.__len__(self)

    def __contains__(self, item: object) -> bool:
        self.probe.refused = True
        return str.__contains__(self, item)  # type: ignore[operator]

    def __getitem__(self, index: Any) -> str:
        self.probe.refused = True
        return str.__getitem__(self, index)

    def __iter__(self) -> Any:
        self.probe.refused = True
        return str.__iter__(self)


def observed(value: str, probe: Probe) -> str:
    """``value``, as a string that sets ``probe.refused`` when a template compares,
    measures, indexes or iterates it (printing it and testing it for truth are fine)."""
    return _Token(value, probe)


class StandIn:
    """A person in a template (``profile``) whose attributes are the values given; reading
    any other attribute refuses the merge."""

    def __init__(self, values: Mapping[str, str], probe: Probe) -> None:
        self.__dict__["_values"] = dict(values)
        self.__dict__["_probe"] = probe

    def __getattr__(self, name: str) -> str:
        values = self.__dict__["_values"]
        if name in values:
            return values[name]
        self.__dict__["_probe"].refused = True
        raise AttributeError(name)


@dataclass(frozen=True)
class _Merge:
    """A finished render split at its tokens: literal text, then slot names, alternating."""

    parts: list[str]
    escaped: dict[str, bool] = field(default_factory=dict)

    def fill(self, values: Mapping[str, str]) -> str:
        out = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
            else:
                value = values[part]
                out.append(escape(value) if self.escaped[part] else value)
        return "".join(out)


def _tokens(values: Mapping[str, str], probe: Probe, *, second: bool) -> dict[str, str]:
    """Tokens for the non-empty ``values``. The two sets share no first or last
    character, case, length or word count; the second is changed by escaping."""
    tokens: dict[str, str] = {}
    for index, (name, value) in enumerate(values.items()):
        if not value:
            tokens[name] = value
        elif second:
            tokens[name] = _Token(f"Xb{_NONCE}{index} <&\"'>qq", probe)
        else:
            tokens[name] = _Token(f"Qa{_NONCE}{index}Z", probe)
    return tokens


def _fill_tokens(text: str, replacements: Mapping[str, str]) -> str:
    if not replacements:
        return text
    pattern = re.compile("|".join(re.escape(token) for token in replacements))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


def _merge_make(
    values: Mapping[str, str],
    render_with: Callable[[Mapping[str, str], Probe], str],
    finish: Callable[[str], str],
) -> Any:
    """Render and check the template once for these values' shape (see the module doc)."""
    probe = Probe()
    first = _tokens(values, probe, second=False)
    second = _tokens(values, probe, second=True)
    try:
        text_first = render_with(first, probe)
        text_second = render_with(second, probe)
    except Exception:
        return _REFUSED  # the full render, per person, raises it again where it belongs
    if probe.refused:
        return _REFUSED
    escaped: dict[str, bool] = {}
    replacements: dict[str, str] = {}
    for name, value in values.items():
        if not value:
            continue
        count = text_first.count(first[name])
        raw, quoted = text_second.count(second[name]), text_second.count(escape(second[name]))
        if raw == count and quoted == 0:
            escaped[name] = False
        elif quoted == count and raw == 0:
            escaped[name] = True
        else:
            return _REFUSED
        if count:
            replacements[str(first[name])] = (
                escape(second[name]) if escaped[name] else str(second[name])
            )
    if _fill_tokens(text_first, replacements) != text_second:
        return _REFUSED
    finished = finish(text_first)
    slot_of = {str(first[name]): name for name in escaped}
    if not slot_of:
        return _Merge(parts=[finished])
    if any(finished.count(token) != text_first.count(token) for token in slot_of):
        return _REFUSED
    pieces = re.split("(" + "|".join(re.escape(token) for token in slot_of) + ")", finished)
    parts = [piece if index % 2 == 0 else slot_of[piece] for index, piece in enumerate(pieces)]
    return _Merge(parts=parts, escaped=escaped)


def merged(
    memo: dict[Any, Any],
    *,
    key: Any,
    values: Mapping[str, str],
    render_with: Callable[[Mapping[str, str], Probe], str],
    finish: Callable[[str], str],
    render_direct: Callable[[], str],
) -> str:
    """Return ``finish`` of the template rendered for these ``values``.

    ``render_with(values, probe)`` renders the template with the given values in
    place of the person's (a ``StandIn`` made with ``probe`` for an object);
    ``render_direct()`` renders and finishes it for the real person, the way
    taken when the template cannot be merged. ``memo`` holds the merges of a
    batch, by ``key`` (what else the render depends on: template, newsletter,
    language) and which values are empty.
    """
    memo_key = (key, tuple((name, bool(value)) for name, value in values.items()))
    merge = memo.get(memo_key)
    if merge is None:
        merge = memo[memo_key] = _merge_make(values, render_with, finish)
    if merge is _REFUSED:
        return render_direct()
    return merge.fill(values)
