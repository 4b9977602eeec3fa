"""API tokens: ``sp_<prefix>_<secret>``; the prefix finds the row, the secret's hash checks it."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from signalpost.api.models import ApiToken

# Writing last_used_at on every request would turn reads into writes.
LAST_USED_PRECISION = timedelta(minutes=5)


def secret_hash(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, name, created_by=None):
    """Create a token; return ``(token row, the full token)``. The full token is shown once."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name[:100], prefix=prefix, secret_hash=secret_hash(secret), created_by=created_by
    )
    return token, f"sp_{prefix}_{secret}"


def api_token_authenticate(raw):
    """Return the live ``ApiToken`` that ``raw`` is, or ``None``."""
    parts = (raw or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "sp" or len(raw) > 200:
        return None
    _, prefix, secret = parts
    token = ApiToken.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.secret_hash, secret_hash(secret)):
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def api_token_revoke(*, token):
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
