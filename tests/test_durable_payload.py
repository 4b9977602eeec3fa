"""A durable receiver gets back the arguments it was sent."""

import datetime
import decimal
import json
import uuid

import pytest

from signalpost.durable.exceptions import PermanentFailure
from signalpost.durable.payload import payload_dump, payload_load, payload_prefetch
from signalpost.newsletters.models import Newsletter, Subscription
from tests.factories import make_newsletter, make_profile

pytestmark = pytest.mark.django_db


def round_trip(value):
    return payload_load(json.loads(json.dumps(payload_dump(value))))


def test_values_survive_the_trip_through_json():
    value = {
        "when": datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 11, 23),
        "amount": decimal.Decimal("9.99"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"a", "b"},
        "pair": ("x", 1),
        "looks_tagged": {"$model": "not a model"},
        "nested": {"ok": [1, None, True, 2.5]},
    }
    expected = {**value, "pair": ["x", 1]}
    assert round_trip(value) == expected


def test_model_instances_travel_by_primary_key_and_are_read_again():
    profile = make_profile(email="jane@example.com")
    assert payload_dump(profile) == {"$model": "accounts.Profile", "pk": profile.pk}
    profile.name = "changed in memory only"
    loaded = round_trip(profile)
    assert loaded.pk == profile.pk
    assert loaded.name == ""
    assert round_trip(Newsletter) is Newsletter


def test_a_deleted_row_is_a_permanent_failure():
    profile = make_profile()
    data = payload_dump(profile)
    profile.delete()
    with pytest.raises(PermanentFailure, match="no longer exists"):
        payload_load(data)


@pytest.mark.parametrize(
    "value",
    [object(), {1: "non-string key"}, b"bytes", make_profile.__class__],
    ids=["object", "int-key", "bytes", "class"],
)
def test_values_that_cannot_travel_are_refused(value):
    with pytest.raises(TypeError):
        payload_dump(value)


def test_an_unsaved_instance_is_refused():
    from signalpost.accounts.models import Profile

    with pytest.raises(TypeError, match="unsaved"):
        payload_dump(Profile(email="x@example.com"))


def test_rows_read_for_a_batch_of_calls_serve_each_others_foreign_keys(
    django_assert_num_queries,
):
    newsletter = make_newsletter()
    profile = make_profile(email="jane@example.com")
    subscription = Subscription.objects.create(profile=profile, newsletter=newsletter)
    calls = [
        {"profile": payload_dump(profile), "subscription": payload_dump(subscription)},
        {"newsletter": payload_dump(newsletter)},
    ]
    payload_prefetch(calls)
    try:
        with django_assert_num_queries(0):
            arguments = payload_load(calls[0])
            loaded = arguments["subscription"]
            assert loaded.profile is arguments["profile"]
            assert loaded.newsletter.slug == newsletter.slug
    finally:
        payload_prefetch([])
    assert payload_load(calls[0])["subscription"].profile.email == "jane@example.com"
