"""The contract of ``signalpost.activity.writes``: each fast path writes what Django would."""

import pytest

from signalpost.activity.models import Activity
from signalpost.activity.writes import activities_insert_imported, activity_insert
from signalpost.newsletters import selectors
from signalpost.newsletters.models import Subscription
from tests.factories import make_newsletter, make_profile
from tests.row_helpers import assert_recent, row


@pytest.mark.django_db
def test_an_activity_row_equals_the_row_save_writes():
    profile, letter = make_profile(), make_newsletter()
    fields = {
        "profile": profile,
        "event": Activity.Event.SUBSCRIBED,
        "newsletter": letter,
        "detail": {"source": "form", "nested": [1, "ü", None]},
    }
    by_save = Activity.objects.create(**fields)
    inserted = Activity(**fields)

    assert activity_insert(activity=inserted) is inserted

    assert isinstance(inserted.pk, int) and inserted.pk != by_save.pk, "auto pk read back"
    assert (inserted._state.adding, inserted._state.db) == (False, "default")
    assert row(Activity, inserted.pk) == row(Activity, by_save.pk)
    stored = Activity.objects.get(pk=inserted.pk)
    assert_recent(stored.created_at)
    assert inserted.created_at == stored.created_at


@pytest.mark.django_db
def test_imported_activity_rows_equal_the_rows_bulk_create_writes(monkeypatch):
    """The one-statement path and the ORM's (no batch CTE) write the same rows."""

    def written(*, cte):
        newsletter = make_newsletter()
        ids = [
            Subscription.objects.create(profile=make_profile(), newsletter=newsletter, status=s).pk
            for s in (Subscription.Status.ACTIVE, Subscription.Status.UNSUBSCRIBED)
        ]
        if not cte:
            monkeypatch.setattr(selectors, "subscriptions_batch_cte", lambda **kwargs: None)
        activities_insert_imported(newsletter=newsletter, subscription_ids=ids, source="import")
        monkeypatch.undo()
        activities = Activity.objects.filter(newsletter=newsletter).order_by("profile_id")
        for activity in activities:
            assert_recent(activity.created_at)
        # Found by JSONField's exact lookup, as the ORM's rows are.
        assert activities.filter(detail={"source": "import", "status": "active"}).count() == 1
        return [
            (a.event, a.detail, Subscription.objects.get(profile=a.profile_id).status)
            for a in activities
        ]

    assert written(cte=True) == written(cte=False)
