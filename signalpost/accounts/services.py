"""Writes to profiles. Each function is one transaction."""

import logging
import math
import re
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from signalpost.accounts.models import Profile, ProfileTag, Tag
from signalpost.accounts.writes import profile_insert_or_get
from signalpost.signals import profile_attributes_changed, profile_tagged, profile_untagged

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 200
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# In an attribute's text: a line break or tab is text (an address, a note); the rest is not.
VALUE_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
QUOTED_LOCAL_PART = re.compile(r'"(.*)"', re.DOTALL)
QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
DOT_ATOM = re.compile(r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*")


def name_clean(raw_name: str | None) -> str:
    """Return a person's name on one line, without control characters, at most 200 long."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", raw_name or "").split())[:NAME_MAX_LENGTH]


def _email_length_check(email: str) -> None:
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            _("An email address has at most %(count)d characters.") % {"count": EMAIL_MAX_LENGTH},
            code="max_length",
        )


def email_normalize(raw_email: str) -> str:
    """Return ``raw_email`` in its one canonical form, or raise ``ValidationError``.

    Addresses are compared case-insensitively everywhere (as mail providers do),
    so they are stored in one case and the unique constraint is on that value.
    Spellings that reach the same mailbox are one address: the domain is stored
    as IDNA's ASCII form, the one the SMTP envelope carries (full-width letters,
    soft hyphens and zero-width characters in it vanish there), and a quoted
    local part that needs no quotes loses them. Otherwise each spelling would get
    its own profile, rate limit and confirmation window.
    """
    email = (raw_email or "").strip().lower()
    if not email:
        raise ValidationError(_("Enter an email address."), code="required")
    _email_length_check(email)
    local_part, at, domain = email.rpartition("@")
    # validate_email's case-insensitive [A-Z] also admits U+017F (long s), which lower() keeps.
    if not at or not local_part.isascii():
        raise ValidationError(_("Enter a valid email address."), code="invalid")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise ValidationError(_("Enter a valid email address."), code="invalid") from error
    quoted = QUOTED_LOCAL_PART.fullmatch(local_part)
    if quoted and DOT_ATOM.fullmatch(unquoted := QUOTED_PAIR.sub(r"\1", quoted[1])):
        local_part = unquoted
    email = f"{local_part}@{domain}"
    _email_length_check(email)
    validate_email(email)
    _deliverable_check(local_part=local_part, domain=domain)
    return email


def _deliverable_check(*, local_part: str, domain: str) -> None:
    """Refuse what ``validate_email`` takes but no confirmation email could ever reach.

    RFC 5321 allows control characters in a quoted local part, an IP address in
    brackets for the domain and (through Django's allowlist) ``localhost``; a
    mail relay refuses the first, and the other two name no public mail server.
    Accepting them only queued a confirmation that failed for hours and became
    a dead letter.
    """
    if CONTROL_CHARACTERS.search(local_part):
        raise ValidationError(
            _("An email address cannot contain control characters."), code="undeliverable"
        )
    if domain.startswith("["):
        raise ValidationError(
            _(
                "An address at an IP address such as [127.0.0.1] is not accepted: "
                "use the mail domain's name, as in name@example.com."
            ),
            code="undeliverable",
        )
    if "." not in domain:
        raise ValidationError(
            _(
                "The domain %(domain)s has no dot: mail cannot be delivered to a local host "
                "name. Use a full domain, as in name@example.com."
            )
            % {"domain": repr(domain)},
            code="undeliverable",
        )


# No savepoint when nested: the insert skips an existing address instead of
# failing on it (and get_or_create, when it is used, keeps its own).
@transaction.atomic(savepoint=False)
def profile_get_or_create(*, email: str, name: str = "") -> tuple[Profile, bool]:
    """Return ``(profile, created)`` for ``email``; safe against concurrent callers.

    ``name`` is set only on a new profile: a form cannot rename someone else.
    An address whose profile is stored in another case is the same address.
    """
    return profile_insert_or_get(email=email_normalize(email), name=name_clean(name))


@transaction.atomic
def profile_update(*, profile: Profile, name: str) -> Profile:
    """Set ``profile``'s name (as the person typed it, at most 200 characters)."""
    name = name_clean(name)
    if profile.name != name:
        profile.name = name
        profile.save(update_fields=["name", "updated_at"])
    return profile


ATTRIBUTES_MAX_KEYS = 50
ATTRIBUTE_KEY_MAX_LENGTH = 100
ATTRIBUTE_VALUE_MAX_LENGTH = 1000
# What every database's JSON keeps exactly (SQLite's turns bigger integers into floats).
ATTRIBUTE_INT_MIN, ATTRIBUTE_INT_MAX = -(2**63), 2**63 - 1


def profile_attributes_check(attributes: object) -> None:
    """Raise ``ValidationError`` naming ``attributes`` unless they are flat and storable.

    String keys, scalar values; numbers finite and whole numbers within 64 bits,
    which every database's JSON keeps as they are.
    """
    if not isinstance(attributes, dict):
        raise ValidationError({"attributes": "Attributes are a JSON object."})
    if len(attributes) > ATTRIBUTES_MAX_KEYS:
        raise ValidationError({"attributes": f"At most {ATTRIBUTES_MAX_KEYS} attributes."})
    for key, value in attributes.items():
        if not isinstance(key, str) or not 0 < len(key) <= ATTRIBUTE_KEY_MAX_LENGTH:
            raise ValidationError(
                {"attributes": f"Keys are 1 to {ATTRIBUTE_KEY_MAX_LENGTH} characters."}
            )
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise ValidationError(
                {"attributes": f"{key}: values are text, numbers, true/false or null."}
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError({"attributes": f"{key}: numbers are finite ({value} is not)."})
        if isinstance(value, int) and not ATTRIBUTE_INT_MIN <= value <= ATTRIBUTE_INT_MAX:
            raise ValidationError({"attributes": f"{key}: whole numbers fit in 64 bits (signed)."})
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            raise ValidationError({"attributes": f"{key!r}: NUL characters are not allowed."})
        if CONTROL_CHARACTERS.search(key):
            raise ValidationError(
                {"attributes": f"{key!r}: a key cannot contain control characters."}
            )
        if isinstance(value, str) and VALUE_CONTROL_CHARACTERS.search(value):
            raise ValidationError(
                {"attributes": f"{key}: control characters other than tab and newline."}
            )
        if isinstance(value, str) and len(value) > ATTRIBUTE_VALUE_MAX_LENGTH:
            raise ValidationError(
                {"attributes": f"{key}: at most {ATTRIBUTE_VALUE_MAX_LENGTH} characters."}
            )


def _attribute_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{key: [old value, new value]}`` for every key whose value differs (None: absent)."""
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(old.keys() | new.keys())
        if key not in old or key not in new or old[key] != new[key]
    }


def _attributes_store(*, profile: Profile, attributes: dict[str, Any], source: str) -> Profile:
    changed = _attribute_changes(profile.attributes or {}, attributes)
    if not changed:
        return profile
    profile.attributes = attributes
    profile.save(update_fields=["attributes", "updated_at"])
    profile_attributes_changed.send(
        sender=Profile, profile=profile, user_email=profile.email, changed=changed, source=source
    )
    return profile


def user_email(user: Any) -> str | None:
    """Return ``user``'s address from its model's email field (``EMAIL_FIELD``), normalised,
    or ``None`` for a model without one, an empty one or one no email could reach."""
    field_name = user.get_email_field_name() if hasattr(user, "get_email_field_name") else "email"
    raw = getattr(user, field_name, None)
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return email_normalize(raw)
    except ValidationError:
        return None


@transaction.atomic
def profile_attributes_set(
    *, profile: Profile, attributes: dict[str, Any], source: str = "service"
) -> Profile:
    """Replace ``profile``'s free-form attributes (see :func:`profile_attributes_check`).

    Sends ``profile_attributes_changed`` with what changed, if anything did.
    """
    profile_attributes_check(attributes)
    return _attributes_store(profile=profile, attributes=dict(attributes), source=source)


@transaction.atomic
def profile_attributes_update(
    *, profile: Profile, values: dict[str, Any], source: str = "service"
) -> Profile:
    """Set the keys of ``values`` on ``profile`` (``None`` removes a key), keeping the others.

    What the preference center does with the attributes a newsletter lets people edit.
    """
    attributes = {**(profile.attributes or {}), **values}
    attributes = {key: value for key, value in attributes.items() if value is not None}
    profile_attributes_check(attributes)
    return _attributes_store(profile=profile, attributes=attributes, source=source)


TAG_NAME_MAX_LENGTH = 50
TAGS_MAX = 100


def tag_name_clean(raw_name: object) -> str:
    """Return a tag's stored name: lower case, on one line; raise ``ValidationError``.

    Tags are compared by this name, so "VIP" and " vip " are one tag. Commas are
    refused: forms and CSV files list tags separated by them.
    """
    if not isinstance(raw_name, str):
        raise ValidationError({"tags": "A tag is text."})
    if CONTROL_CHARACTERS.search(raw_name):
        raise ValidationError({"tags": f"{raw_name[:50]!r}: no control characters in a tag."})
    name = " ".join(raw_name.split()).lower()
    if not name:
        raise ValidationError({"tags": "A tag cannot be empty."})
    if len(name) > TAG_NAME_MAX_LENGTH:
        raise ValidationError(
            {"tags": f"{name[:50]}...: a tag has at most {TAG_NAME_MAX_LENGTH} characters."}
        )
    if "," in name:
        raise ValidationError({"tags": f"{name!r}: a tag cannot contain a comma."})
    return name


def tag_names_clean(raw_names: object) -> list[str]:
    """Return the distinct cleaned names of ``raw_names`` (a list), in their order."""
    if not isinstance(raw_names, (list, tuple)):
        raise ValidationError({"tags": "Tags are a list of names."})
    names = list(dict.fromkeys(tag_name_clean(name) for name in raw_names))
    if len(names) > TAGS_MAX:
        raise ValidationError({"tags": f"At most {TAGS_MAX} tags."})
    return names


def tags_parse(text: str) -> list[str]:
    """The tags in ``text`` separated by commas (a form field, a CSV cell), cleaned."""
    return tag_names_clean([part for part in (text or "").split(",") if part.strip()])


@transaction.atomic
def profile_tags_set(*, profile: Profile, names: list[str], source: str = "service") -> Profile:
    """Give ``profile`` exactly the tags ``names``; send ``profile_tagged`` for each tag
    added and ``profile_untagged`` for each removed (nothing when nothing changed)."""
    wanted = set(tag_names_clean(names))
    current = set(profile.tags.values_list("name", flat=True))
    added, removed = sorted(wanted - current), sorted(current - wanted)
    if added:
        tag_ids = tags_get_or_create(names=added)
        ProfileTag.objects.bulk_create(
            [ProfileTag(profile=profile, tag_id=tag_ids[name]) for name in added],
            ignore_conflicts=True,
        )
    if removed:
        ProfileTag.objects.filter(profile=profile, tag__name__in=removed).delete()
    for name in added:
        profile_tagged.send(sender=Profile, tag=name, profile_ids=[profile.pk], source=source)
    for name in removed:
        profile_untagged.send(sender=Profile, tag=name, profile_ids=[profile.pk], source=source)
    return profile


def tags_get_or_create(*, names: list[str]) -> dict[str, int]:
    """Return ``{name: tag id}`` for the cleaned ``names``, creating the missing tags."""
    Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
    return dict(Tag.objects.filter(name__in=names).values_list("name", "id"))


@transaction.atomic
def profile_link_user(*, user: "User") -> Profile | None:
    """Create or link the profile for ``user``'s email address; return it or ``None``.

    A profile already linked to another user is left alone, and so is a user
    without a valid email address.
    """
    # A user model without an email field (a custom AUTH_USER_MODEL) has no profile
    # until its user subscribes with an address (newsletters.services.user_subscribe).
    email = user_email(user)
    if email is None:
        return None
    current = Profile.objects.filter(user=user).first()
    if current is not None and current.email == email:
        return current
    if current is not None:
        # The user changed address: move their profile unless that address has one.
        if Profile.objects.for_email(email).exists():
            logger.info(
                "Not moving profile %s to %s: that address has a profile", current.pk, email
            )
            return current
        current.email = email
        current.save(update_fields=["email", "updated_at"])
        return current
    profile = Profile.objects.for_email(email).first()
    if profile is None:
        try:
            with transaction.atomic():
                profile = Profile.objects.create(email=email)
        except IntegrityError:
            profile = Profile.objects.for_email(email).get()
    if profile.user_id is None:
        profile.user = user
        profile.save(update_fields=["user", "updated_at"])
    return profile


@transaction.atomic
def profile_user_attach(*, profile: Profile, user: Any) -> bool:
    """Link ``profile`` to ``user`` when neither is linked yet; return whether they now are.

    A user has at most one profile (``user.profile``), and a profile one user: an
    address already another user's, or a second address of this user, stays as it is.
    """
    if profile.user_id is not None:
        return bool(profile.user_id == user.pk)
    if Profile.objects.filter(user=user).exists():
        return False
    profile.user = user
    profile.save(update_fields=["user", "updated_at"])
    return True
