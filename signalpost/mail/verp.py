"""VERP return paths: each message's envelope sender names its recipient, signed.

With ``BOUNCE_ADDRESS = "bounces@news.example.org"`` a delivery's message goes
with ``MAIL FROM:<bounces+d<id>-<mac>@news.example.org>``, so a bounce that
comes back says which delivery failed without reading the report's guesswork.
``<id>`` is base 36, ``<mac>`` 12 characters of an HMAC (``SECRET_KEY``) in
lower-case base 32: mail systems that lower-case local parts break nothing,
and a forged address is ignored. ``p<id>`` names a profile (subscription emails).
"""

import base64
import functools
import hashlib
import hmac
import re

from django.conf import settings
from django.utils.crypto import constant_time_compare

from signalpost.conf import conf

_SALT = "signalpost.mail.verp"
_TOKEN = re.compile(r"([dp])([0-9a-z]{1,13})-([a-z2-7]{12})")


def _mac(kind: str, number: str) -> str:
    """``salted_hmac(_SALT, kind + number, algorithm="sha256")``'s digest, its key derived
    once per ``SECRET_KEY`` (a send makes one per message), in base 32."""
    digest = hmac.digest(_key(settings.SECRET_KEY), f"{kind}{number}".encode(), "sha256")
    return base64.b32encode(digest).decode("ascii").lower()[:12]


@functools.lru_cache(maxsize=4)
def _key(secret: str | bytes) -> bytes:
    secret_bytes = secret if isinstance(secret, bytes) else secret.encode()
    return hashlib.sha256(_SALT.encode() + secret_bytes).digest()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def return_path(*, kind: str, pk: int | None) -> str | None:
    """The envelope sender for a delivery (``kind="d"``) or profile (``"p"``), or ``None``.

    ``None`` without ``BOUNCE_ADDRESS`` or without a primary key (a test email).
    """
    address = conf.BOUNCE_ADDRESS
    if not address or not pk:
        return None
    local, _, domain = address.rpartition("@")
    number = _base36(pk)
    return f"{local}+{kind}{number}-{_mac(kind, number)}@{domain}"


def recipient_of(address: str) -> tuple[str, int] | None:
    """``(kind, pk)`` named by a VERP ``address`` of ours with a valid MAC, else ``None``."""
    bounce = conf.BOUNCE_ADDRESS
    if not bounce or "@" not in address:
        return None
    local, _, domain = bounce.rpartition("@")
    their_local, _, their_domain = address.strip().strip("<>").rpartition("@")
    prefix = f"{local}+".lower()
    their_local = their_local.lower()
    if their_domain.lower() != domain.lower() or not their_local.startswith(prefix):
        return None
    match = _TOKEN.fullmatch(their_local[len(prefix) :])
    if match is None:
        return None
    kind, number, mac = match.groups()
    if not constant_time_compare(mac, _mac(kind, number)):
        return None
    return kind, int(number, 36)
