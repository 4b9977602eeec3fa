"""Reads of the activity trail."""

from signalpost.activity.models import Activity


def activities_for_profile(*, profile):
    """Return ``profile``'s events, newest first."""
    return Activity.objects.filter(profile=profile).select_related("newsletter")
