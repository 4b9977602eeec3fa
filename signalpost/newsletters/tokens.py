"""Signed links: confirm a subscription, unsubscribe in one click, open the preference center.

Each purpose signs with its own salt, so a token made for one can never be used
for another. Tokens carry ids, not addresses, and nothing secret.
"""

from django.core import signing

CONFIRM = "signalpost.newsletters.confirm"
UNSUBSCRIBE = "signalpost.newsletters.unsubscribe"
PREFERENCES = "signalpost.newsletters.preferences"

TOKEN_MAX_LENGTH = 300


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
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        raise TokenInvalid("malformed token")
    newsletter_id = data.get("n")
    if newsletter_id is not None and not isinstance(newsletter_id, int):
        raise TokenInvalid("malformed token")
    return data["p"], newsletter_id
