"""Writes to the activity trail."""

from signalpost.activity.models import Activity
from signalpost.activity.writes import activity_insert


def activity_record(*, profile, event, newsletter=None, detail=None):
    """Append one event to ``profile``'s trail and return it.

    Runs in the caller's transaction (receivers call it), so the row exists
    exactly when the event it records does.
    """
    activity = Activity(profile=profile, event=event, newsletter=newsletter, detail=detail or {})
    return activity_insert(activity=activity)
