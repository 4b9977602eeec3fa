"""The address a host site has verified for one of its users (``SIGNALPOST_VERIFIED_EMAIL``,
docs/integrate.md). Their plain address is ``accounts.services.user_email``."""

from collections.abc import Callable
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from signalpost.accounts.services import email_normalize
from signalpost.conf import conf


def user_verified_email(user: Any) -> str | None:
    """Return the address the host site vouches is ``user``'s, or ``None``.

    Asks the function ``SIGNALPOST_VERIFIED_EMAIL`` names (it takes the user and returns
    an address or ``None``); without one no address counts as verified.
    """
    path = conf.VERIFIED_EMAIL
    if not path or not getattr(user, "is_authenticated", False):
        return None
    raw = _hook(path)(user)
    if not raw:
        return None
    try:
        return email_normalize(raw)
    except ValidationError:
        return None


@cache
def _hook(path: str) -> Callable[[Any], str | None]:
    hook: Callable[[Any], str | None] = import_string(path)
    return hook
