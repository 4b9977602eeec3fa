"""Django's model and auth signals keep profiles in step with users."""

import logging

import pytest

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from tests.factories import make_profile, make_user

pytestmark = pytest.mark.django_db


def test_creating_a_user_creates_their_profile():
    user = make_user(email="Jane@Example.com")
    assert Profile.objects.get(user=user).email == "jane@example.com"


def test_a_new_user_is_linked_to_the_profile_their_address_already_has():
    profile = make_profile(email="jane@example.com")
    user = make_user(email="jane@example.com")
    profile.refresh_from_db()
    assert profile.user == user
    assert Profile.objects.count() == 1


def test_a_user_without_email_gets_no_profile():
    make_user(email="")
    assert Profile.objects.count() == 0


def test_changing_a_users_email_moves_their_profile():
    user = make_user(email="jane@example.com")
    user.email = "jane@new.example.com"
    user.save()
    assert Profile.objects.get(user=user).email == "jane@new.example.com"
    assert Profile.objects.count() == 1


def test_user_creation_is_logged_once_not_on_every_save(caplog):
    with caplog.at_level(logging.INFO, logger="signalpost.accounts.receivers"):
        user = make_user(username="jane")
        user.first_name = "Jane"
        user.save()
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("Creating user jane") == 1
    assert len(messages) == 1


def test_logging_in_is_recorded_in_the_activity_trail(client):
    user = make_user(username="jane", email="jane@example.com", password="a-long-password-1")
    assert client.login(username="jane", password="a-long-password-1")
    assert Activity.objects.filter(profile__user=user, event="user_logged_in").count() == 1


def test_an_address_stored_in_capitals_is_found_whatever_the_case_asked(db):
    from signalpost.accounts.selectors import profile_by_email

    # Stored before addresses were lower-cased on the way in (an old import, the admin).
    stored = Profile.objects.create(email="Jane@Example.COM")
    assert Profile.objects.values_list("email", flat=True).get(pk=stored.pk) == "Jane@Example.COM"

    assert profile_by_email(email="jane@example.com") == stored
    assert profile_by_email(email="JANE@example.com") == stored
    assert profile_by_email(email="nobody@example.com") is None
