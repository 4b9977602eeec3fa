"""The time automations run by: one function, so tests can move it (never sleep)."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time, as every wait, claim and due check of automations sees it.

    Tests replace this function (``monkeypatch.setattr(clock, "now", ...)``) to move
    time forward; the in-process worker then sees the moved time too.
    """
    return timezone.now()
