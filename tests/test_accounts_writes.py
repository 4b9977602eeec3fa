"""The contract of ``signalpost.accounts.writes``: each fast path writes what Django would."""

import pytest
from django.db.models.signals import post_save

from signalpost.accounts.models import Profile
from signalpost.accounts.writes import profile_insert_or_get, profile_insert_unless_known
from tests.row_helpers import Heard, assert_recent, row


@pytest.mark.django_db
def test_an_insert_skipped_on_conflict_writes_nothing_and_sends_no_post_save():
    first, again = Profile(email="ann@example.com"), Profile(email="ANN@Example.com")
    with Heard(post_save, Profile) as post:
        assert profile_insert_unless_known(profile=first) is True
        assert profile_insert_unless_known(profile=again) is False

    assert [call["instance"] for call in post.calls] == [first]
    assert again.pk is None and again._state.adding is True and again._state.db is None
    assert list(Profile.objects.values_list("pk", "email")) == [(first.pk, "ann@example.com")]


@pytest.mark.django_db
def test_a_new_profile_equals_the_one_get_or_create_makes():
    by_orm, created = Profile.objects.for_email("bob@example.com").get_or_create(
        defaults={"email": "bob@example.com", "name": "Bob"}
    )
    assert created
    written_by_orm = row(Profile, by_orm.pk, leave_out=("id", "created_at", "updated_at"))
    by_orm.delete()

    inserted, created = profile_insert_or_get(email="bob@example.com", name="Bob")

    assert created is True and inserted.pk is not None
    assert row(Profile, inserted.pk, leave_out=("id", "created_at", "updated_at")) == (
        written_by_orm
    )
    assert_recent(Profile.objects.get(pk=inserted.pk).created_at)


@pytest.mark.django_db
def test_a_known_address_returns_its_profile_whatever_its_case():
    known, _ = profile_insert_or_get(email="ann@example.com", name="Ann")

    again, created = profile_insert_or_get(email="ANN@example.com", name="Someone else")

    assert created is False and again.pk == known.pk and again.name == "Ann"
    assert Profile.objects.count() == 1


@pytest.mark.django_db
def test_with_save_signals_hooked_the_profile_is_made_by_get_or_create():
    with Heard(post_save, Profile) as post:
        made, created = profile_insert_or_get(email="ann@example.com", name="Ann")
        known, created_again = profile_insert_or_get(email="ann@example.com", name="Ann")

    assert (created, created_again) == (True, False) and known.pk == made.pk
    assert [(call["instance"].pk, call["created"]) for call in post.calls] == [(made.pk, True)]
