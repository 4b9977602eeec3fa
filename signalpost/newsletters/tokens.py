"""Signed links: confirm a subscription, unsubscribe in one click, open the preference center.

Each purpose signs with its own salt, so a token made for one can never be used
for another. Tokens carry ids, not addresses, and nothing secret.
"""

import base64
import hashlib
import hmac
import time

from django.conf import settings
from django.core import signing

CONFIRM = "signalpost.newsletters.confirm"
UNSUBSCRIBE = "signalpost.newsletters.unsubscribe"
PREFERENCES = "signalpost.newsletters.preferences"

TOKEN_MAX_LENGTH = 300
# Web nodes' clocks may differ a little; a token from further ahead was not made by us now.
CLOCK_SKEW_SECONDS = 300


class TokenInvalid(Exception):
    """The token was tampered with, truncated, or made for something else."""


class TokenExpired(TokenInvalid):
    """The token was genuine but is older than its purpose allows."""


def token_make(*, purpose, profile, newsletter=None):
    """Return a URL-safe signed token naming ``profile`` (and ``newsletter``) for ``purpose``."""
    data = {"p": profile.pk}
    if newsletter is not None:
        data["n"] = newsletter.pk
    return signing.dumps(data, salt=purpose, compress=False)


class TokenMaker:
    """``token_make`` for one purpose and many profiles: the same tokens, cheaper.

    ``signing.dumps`` builds a signer, a JSON encoder and the salted signing key
    again for every token; a send makes two tokens per email, and that was a
    tenth of the sender's CPU (bench/README.md, "Fan-out at 1,000,000"). This
    derives the key once and writes the two-field JSON itself, as Django's
    ``TimestampSigner`` with its defaults (SHA-256, ``:``, ``SECRET_KEY``)
    does. ``tests/test_tokens.py`` holds it to ``signing.dumps``, byte for byte.
    """

    def __init__(self, *, purpose: str, newsletter=None):
        secret = settings.SECRET_KEY
        secret_bytes = secret if isinstance(secret, bytes) else secret.encode()
        # django.utils.crypto.salted_hmac's key, for Signer(salt=purpose).signature().
        self._key = hashlib.sha256(f"{purpose}signer".encode() + secret_bytes).digest()
        self._tail = "}" if newsletter is None else f',"n":{int(newsletter.pk)}}}'

    def make(self, *, profile) -> str:
        """Return ``token_make(purpose=..., profile=profile, newsletter=...)``'s token."""
        data = f'{{"p":{int(profile.pk)}{self._tail}'.encode()
        value = f"{_b64(data)}:{signing.b62_encode(int(time.time()))}"
        signature = _b64(hmac.digest(self._key, value.encode(), "sha256"))
        return f"{value}:{signature}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_read(*, token, purpose, max_age=None):
    """Return the ids in ``token`` as ``(profile_id, newsletter_id or None)``.

    Raises ``TokenExpired`` past ``max_age`` seconds and ``TokenInvalid`` for
    anything that is not a genuine token for ``purpose``.
    """
    if not token or len(token) > TOKEN_MAX_LENGTH:
        raise TokenInvalid("malformed token")
    try:
        data = signing.loads(token, salt=purpose, max_age=max_age)
    except signing.SignatureExpired as error:
        raise TokenExpired(str(error)) from error
    except (signing.BadSignature, ValueError, UnicodeDecodeError) as error:
        raise TokenInvalid(str(error)) from error
    if not isinstance(data, dict) or set(data) - {"p", "n"} or not _is_id(data.get("p")):
        raise TokenInvalid("malformed token")
    newsletter_id = data.get("n")
    if newsletter_id is not None and not _is_id(newsletter_id):
        raise TokenInvalid("malformed token")
    if _signed_at(token) > time.time() + CLOCK_SKEW_SECONDS:
        raise TokenInvalid("token from the future")
    return data["p"], newsletter_id


def _is_id(value):
    # Not isinstance: True is an int, and {"p": true} would name profile 1.
    return type(value) is int and 0 < value < 2**63


def _signed_at(token):
    """The time at which the (already verified) ``token`` was signed, in Unix seconds."""
    return signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[-2])
