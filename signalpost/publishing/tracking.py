"""Tracked links and the open pixel in an issue's email: the body prepared once, tokens per reader.

An issue's sanitised HTML is scanned once per batch (``TrackedBody``): every http(s)
link's ``href`` becomes a placeholder naming the link's index in the issue, and an
open pixel's ``src`` one more. Each reader's message then swaps the placeholders for
signed tokens in one regular-expression pass: no per-reader HTML parse.

A token names the issue, the delivery and the link's index, never the URL: the
redirect reads the target from the issue (``Issue.tracked_links``), so it can only
ever send someone where the issue itself linked. Tokens are HMAC-SHA256 (truncated
to 128 bits) under a key derived from ``SECRET_KEY`` (its fallbacks still verify),
one salt per purpose, so a click token is no open token and no other link's token.
"""

import base64
import hashlib
import hmac
import html
import re
import secrets
from collections.abc import Callable

from django.conf import settings
from django.core import signing
from django.urls import reverse

from signalpost.newsletters.links import TOKEN_SLOT

CLICK = "signalpost.engagement.click"
OPEN = "signalpost.engagement.open"
TOKEN_MAX_LENGTH = 100
OPEN_INDEX = "o"

# nh3 writes every attribute double-quoted; a link in the sanitised body is this.
_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_TRACKED_SCHEMES = ("http://", "https://")


class TrackingTokenInvalid(Exception):
    """The token was tampered with, truncated, signed elsewhere or made for something else."""


def _key(purpose: str, secret: str | bytes) -> bytes:
    text = secret.decode() if isinstance(secret, bytes) else secret
    return hashlib.sha256(f"signalpost.tracking:{purpose}:{text}".encode()).digest()


def _signature(key: bytes, value: str) -> str:
    digest = hmac.digest(key, value.encode(), "sha256")[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenSigner:
    """Makes and reads the tokens of one purpose, deriving its keys once."""

    def __init__(self, purpose: str):
        self.purpose = purpose
        self.key = _key(purpose, settings.SECRET_KEY)
        self.fallback_keys = [_key(purpose, old) for old in settings.SECRET_KEY_FALLBACKS]

    def make(self, *, issue_id: int, delivery_id: int, index: int | str) -> str:
        """Return the URL-safe token naming ``delivery_id`` of ``issue_id`` and link ``index``."""
        return self.maker(issue_id=issue_id, delivery_id=delivery_id)(index)

    def maker(self, *, issue_id: int, delivery_id: int) -> Callable[[int | str], str]:
        """``make`` for one delivery's links: the ids encoded once, then one HMAC per link."""
        encode = signing.b62_encode
        prefix = f"{encode(issue_id)}.{encode(delivery_id)}."
        key = self.key

        def token(index: int | str) -> str:
            value = prefix + (index if isinstance(index, str) else encode(index))
            return f"{value}.{_signature(key, value)}"

        return token

    def read(self, token: str) -> tuple[int, int, str]:
        """Return ``(issue_id, delivery_id, index text)``; raise ``TrackingTokenInvalid``."""
        if not token or len(token) > TOKEN_MAX_LENGTH or not token.isascii():
            raise TrackingTokenInvalid("malformed token")
        value, _dot, signature = token.rpartition(".")
        if not any(
            hmac.compare_digest(signature, _signature(key, value))
            for key in (self.key, *self.fallback_keys)
        ):
            raise TrackingTokenInvalid("bad signature")
        issue, delivery, index = value.split(".")
        return signing.b62_decode(issue), signing.b62_decode(delivery), index


def click_read(token: str) -> tuple[int, int, int]:
    """Return ``(issue_id, delivery_id, link index)`` of a click token."""
    issue_id, delivery_id, index = TokenSigner(CLICK).read(token)
    if index == OPEN_INDEX:
        raise TrackingTokenInvalid("not a click token")
    return issue_id, delivery_id, signing.b62_decode(index)


def open_read(token: str) -> tuple[int, int]:
    """Return ``(issue_id, delivery_id)`` of an open-pixel token."""
    issue_id, delivery_id, index = TokenSigner(OPEN).read(token)
    if index != OPEN_INDEX:
        raise TrackingTokenInvalid("not an open token")
    return issue_id, delivery_id


def links_find(body_html: str) -> list[str]:
    """The http(s) links of ``body_html`` (sanitised), in order, one per occurrence."""
    return [
        html.unescape(match.group(2))
        for match in _HREF.finditer(body_html)
        if html.unescape(match.group(2)).lower().startswith(_TRACKED_SCHEMES)
    ]


def _path_before_token(name: str) -> str:
    """The path of URL ``name`` up to its token, under wherever the site mounted it."""
    return reverse(name, args=[TOKEN_SLOT]).rsplit(TOKEN_SLOT, 1)[0]


class TrackedBody:
    """An issue's body with its links (and an open pixel) as placeholders, for one batch.

    ``html`` and ``text`` are what the email's templates get; ``personalise(part,
    issue_id=, delivery_id=)`` returns a rendered part with each placeholder
    replaced by that delivery's token URL.
    """

    def __init__(
        self,
        *,
        body_html: str,
        site_url: str,
        clicks: bool,
        opens: bool,
        text_for: Callable[[str], str],
    ):
        slot = f"Tk{secrets.token_hex(6)}"
        self._clicks = TokenSigner(CLICK)
        self._opens = TokenSigner(OPEN)
        # Under whatever prefix the site mounted Signalpost's pages (docs/integrate.md).
        self._click_base = site_url + _path_before_token("signalpost:tracked_click")
        self._open_base = site_url + _path_before_token("signalpost:tracked_open")
        index = iter(range(1_000_000))

        def placeholder(match: re.Match[str]) -> str:
            if not clicks or not html.unescape(match.group(2)).lower().startswith(_TRACKED_SCHEMES):
                return match.group(0)
            return f"{match.group(1)}{self._click_base}{slot}n{next(index)}z{match.group(3)}"

        tracked = _HREF.sub(placeholder, body_html)
        self.text = text_for(tracked)
        self.untracked_text = text_for(body_html)
        if opens:
            tracked += (
                f'<img src="{self._open_base}{slot}o.gif" width="1" height="1" alt="" '
                'style="display:block;border:0;width:1px;height:1px">'
            )
        self.html = tracked
        self._pattern = re.compile(rf"{slot}(?:n(\d+)z|o)")

    @property
    def placeholders(self) -> re.Pattern[str]:
        """What ``personalise`` replaces: a line without a match is every reader's."""
        return self._pattern

    def personalise(self, part: str, *, issue_id: int, delivery_id: int) -> str:
        """``part`` with every link placeholder swapped for this delivery's token."""
        return self.personaliser(issue_id=issue_id, delivery_id=delivery_id)(part)

    def personaliser(self, *, issue_id: int, delivery_id: int) -> Callable[[str], str]:
        """``personalise`` for one delivery's parts, or their lines: each token signed once."""
        click = self._clicks.maker(issue_id=issue_id, delivery_id=delivery_id)
        tokens: dict[str | None, str] = {}

        def token(match: re.Match[str]) -> str:
            index = match.group(1)
            made = tokens.get(index)
            if made is None:
                if index is None:
                    made = self._opens.make(issue_id=issue_id, delivery_id=delivery_id, index="o")
                else:
                    made = click(int(index))
                tokens[index] = made
            return made

        def personalise(part: str) -> str:
            return self._pattern.sub(token, part)

        return personalise
