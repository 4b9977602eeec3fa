"""Writes to the activity trail."""

from typing import Any

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.activity.writes import activity_insert
from signalpost.newsletters.models import Newsletter


def activity_record(
    *,
    profile: Profile,
    event: str,
    newsletter: Newsletter | None = None,
    detail: dict[str, Any] | None = None,
) -> Activity:
    """Append one event to ``profile``'s trail and return it.

    Runs in the caller's transaction (receivers call it), so the row exists
    exactly when the event it records does.
    """
    activity = Activity(profile=profile, event=event, newsletter=newsletter, detail=detail or {})
    return activity_insert(activity=activity)
