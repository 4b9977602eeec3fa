"""Reads of profiles."""

from django.core.exceptions import ValidationError

from signalpost.accounts.models import Profile
from signalpost.accounts.services import email_normalize


def profile_by_email(*, email: str) -> Profile | None:
    """Return the profile for ``email``, or ``None`` (also for an invalid address)."""
    try:
        email = email_normalize(email)
    except ValidationError:
        return None
    return Profile.objects.for_email(email).first()
