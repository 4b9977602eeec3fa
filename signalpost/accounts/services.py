"""Writes to profiles. Each function is one transaction."""

import logging

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from signalpost.accounts.models import Profile

logger = logging.getLogger(__name__)

EMAIL_MAX_LENGTH = 254


def email_normalize(raw_email):
    """Return ``raw_email`` trimmed and lower-cased, or raise ``ValidationError``.

    Addresses are compared case-insensitively everywhere (as mail providers do),
    so they are stored in one case and the unique constraint is on that value.
    """
    email = (raw_email or "").strip().lower()
    if not email:
        raise ValidationError("Enter an email address.", code="required")
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"An email address has at most {EMAIL_MAX_LENGTH} characters.", code="max_length"
        )
    validate_email(email)
    return email


# No savepoint when nested: get_or_create keeps its own around the insert.
@transaction.atomic(savepoint=False)
def profile_get_or_create(*, email, name=""):
    """Return ``(profile, created)`` for ``email``; safe against concurrent callers.

    ``name`` is set only on a new profile: a form cannot rename someone else.
    """
    email = email_normalize(email)
    profile, created = Profile.objects.get_or_create(email=email, defaults={"name": name[:200]})
    return profile, created


@transaction.atomic
def profile_update(*, profile, name):
    """Set ``profile``'s name (as the person typed it, at most 200 characters)."""
    name = " ".join(name.split())[:200]
    if profile.name != name:
        profile.name = name
        profile.save(update_fields=["name", "updated_at"])
    return profile


@transaction.atomic
def profile_link_user(*, user):
    """Create or link the profile for ``user``'s email address; return it or ``None``.

    A profile already linked to another user is left alone, and so is a user
    without a valid email address.
    """
    try:
        email = email_normalize(user.email)
    except ValidationError:
        return None
    current = Profile.objects.filter(user=user).first()
    if current is not None and current.email == email:
        return current
    if current is not None:
        # The user changed address: move their profile unless that address has one.
        if Profile.objects.filter(email=email).exists():
            logger.info(
                "Not moving profile %s to %s: that address has a profile", current.pk, email
            )
            return current
        current.email = email
        current.save(update_fields=["email", "updated_at"])
        return current
    try:
        with transaction.atomic():
            profile, _ = Profile.objects.get_or_create(email=email)
    except IntegrityError:
        profile = Profile.objects.get(email=email)
    if profile.user_id is None:
        profile.user = user
        profile.save(update_fields=["user", "updated_at"])
    return profile
