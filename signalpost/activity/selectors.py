"""Reads of the activity trail."""

from django.db.models import QuerySet

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity


def activities_for_profile(*, profile: Profile) -> QuerySet[Activity]:
    """Return ``profile``'s events, newest first."""
    return Activity.objects.filter(profile=profile).select_related("newsletter")
