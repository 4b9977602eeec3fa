"""Row-level writes to profiles that skip the ORM's per-query machinery.

This is the accounts app's persistence module: services call these functions
and never look at ``_state``, the database vendor or the model's save signals
themselves. Each function writes exactly the row Django's own API would; the
contract tests in ``tests/test_accounts_writes.py`` hold it to that.
"""

from django.db import connections, router
from django.db.models.signals import post_save, pre_save

from signalpost.accounts.models import Profile
from signalpost.rows import row_insert, rows_insert


def profile_insert_or_get(*, email: str, name: str) -> tuple[Profile, bool]:
    """Return ``(profile, created)`` for the normalised ``email``, inserting it if new.

    What ``Profile.objects.for_email(email).get_or_create(defaults=...)`` returns,
    usually by one ``INSERT ... ON CONFLICT DO NOTHING`` (``profile_insert_unless_known``).
    When something listens to the profile's save signals, it is that
    ``get_or_create``: the insert would send ``pre_save`` for a known address whose
    row is never written. Runs in the caller's transaction.
    """
    if pre_save.has_listeners(Profile) or post_save.has_listeners(Profile):
        # Nothing in Signalpost hooks them, so this is not the usual path.
        return Profile.objects.for_email(email).get_or_create(
            defaults={"email": email, "name": name}
        )
    profile = Profile(email=email, name=name)
    if profile_insert_unless_known(profile=profile):
        return profile, True
    return Profile.objects.for_email(email).get(), False


def profiles_insert_new(*, profiles: list[Profile]) -> list[Profile]:
    """INSERT each unsaved profile of ``profiles`` (normalised, distinct addresses) whose
    address has none yet; return those written, in their order, with their ids.

    What ``profile_insert_or_get`` does for each, keeping the created ones, in one
    ``INSERT ... ON CONFLICT DO NOTHING`` (``rows.rows_insert``); when something listens
    to the profile's save signals, by that function one by one (the profiles returned
    are then the ones it made). Runs in the caller's transaction.
    """
    if pre_save.has_listeners(Profile) or post_save.has_listeners(Profile):
        made = [profile_insert_or_get(email=p.email, name=p.name) for p in profiles]
        return [profile for profile, created in made if created]
    return rows_insert(profiles, on_conflict=_unless_known(), key="email")


def _unless_known() -> str:
    email_column = connections[router.db_for_write(Profile)].ops.quote_name(
        Profile._meta.get_field("email").column  # type: ignore[arg-type]  # a concrete field
    )
    # The expression of accounts_profile_email_unique_ci.
    return f"ON CONFLICT (LOWER({email_column})) DO NOTHING"


def profile_insert_unless_known(*, profile: Profile) -> bool:
    """INSERT the unsaved ``profile`` unless its address has one; return whether it did.

    One statement where ``get_or_create`` takes four (SELECT, SAVEPOINT, INSERT,
    RELEASE): ``ON CONFLICT DO NOTHING`` on the unique constraint's expression
    (PostgreSQL, SQLite 3.35+) skips a known address, or one a concurrent
    transaction has just inserted, without an error to recover from. For use
    only when nothing listens to the profile's save signals (see above): a known
    address would get a ``pre_save`` for a row that is never written.
    """
    return row_insert(profile, on_conflict=_unless_known())
