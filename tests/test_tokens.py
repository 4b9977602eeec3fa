"""Signed links name a person by plain ids only: a token signed with the site's key but
holding anything else, or dated in the future, is refused like a tampered one."""

import time

import pytest
from django.core import signing

from signalpost.accounts.models import Profile
from signalpost.newsletters import tokens
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db


class _SignerFrom(signing.TimestampSigner):
    """Signs with the site's key as if the clock read ``now + offset`` seconds."""

    def __init__(self, *, offset, **kwargs):
        self.offset = offset
        super().__init__(**kwargs)

    def timestamp(self):
        return signing.b62_encode(int(time.time()) + self.offset)


def signed(data, *, purpose=tokens.UNSUBSCRIBE, offset=0):
    return _SignerFrom(offset=offset, salt=purpose).sign_object(data, compress=False)


@pytest.mark.parametrize(
    "data",
    [
        {"p": True},
        {"p": 1.0},
        {"p": "1"},
        {"p": [1]},
        {"p": None},
        {"p": 0},
        {"p": -3},
        {"p": 2**70},
        {"p": 1, "n": True},
        {"p": 1, "n": "2"},
        {"p": 1, "n": 2.5},
        {"p": 1, "x": 2},
        [1, 2],
        "p",
        {},
    ],
)
def test_a_genuinely_signed_token_without_plain_ids_is_refused(data):
    with pytest.raises(tokens.TokenInvalid):
        tokens.token_read(token=signed(data), purpose=tokens.UNSUBSCRIBE)


def test_a_token_dated_in_the_future_is_refused():
    with pytest.raises(tokens.TokenInvalid):
        tokens.token_read(token=signed({"p": 1}, offset=86_400), purpose=tokens.UNSUBSCRIBE)


def test_a_token_from_a_clock_a_little_ahead_is_accepted():
    assert tokens.token_read(token=signed({"p": 1, "n": 2}, offset=60), purpose=tokens.UNSUBSCRIBE)


def test_a_token_dated_in_the_future_does_not_outlive_its_max_age():
    token = signed({"p": 1}, purpose=tokens.PREFERENCES, offset=10 * 365 * 86_400)
    with pytest.raises(tokens.TokenInvalid):
        tokens.token_read(token=token, purpose=tokens.PREFERENCES, max_age=90 * 86_400)


def test_true_as_a_profile_id_does_not_unsubscribe_the_first_profile(client):
    newsletter = make_newsletter(slug="weekly")
    first = Profile.objects.create(pk=1, email="first@example.com")
    subscribe(email=first.email, newsletter=newsletter, source="admin")

    response = client.post(f"/n/weekly/unsubscribe/{signed({'p': True, 'n': newsletter.pk})}/")

    assert response.status_code == 400
    assert Subscription.objects.get().status == "active"


def test_a_future_dated_preference_link_gets_the_invalid_link_page(client):
    profile = Profile.objects.create(email="jane@example.com")
    token = signed({"p": profile.pk}, purpose=tokens.PREFERENCES, offset=86_400)

    response = client.get(f"/preferences/{token}/")

    assert response.status_code == 400
    assert "jane@example.com" not in response.content.decode()


@pytest.mark.parametrize("purpose", [tokens.UNSUBSCRIBE, tokens.PREFERENCES, tokens.CONFIRM])
@pytest.mark.parametrize("secret", ["a-site-key", "ключ with spaces", b"bytes-key\xff"])
@pytest.mark.parametrize("newsletter_id", [None, 1, 2**40])
@pytest.mark.parametrize("profile_id", [1, 987_654_321, 2**62])
def test_a_send_signs_each_link_as_token_make_does(
    settings, monkeypatch, purpose, secret, newsletter_id, profile_id
):
    settings.SECRET_KEY = secret
    monkeypatch.setattr(time, "time", lambda: 1_796_000_000.75)
    profile = Profile(pk=profile_id)
    newsletter = None if newsletter_id is None else _Named(pk=newsletter_id)

    token = tokens.TokenMaker(purpose=purpose, newsletter=newsletter).make(profile=profile)

    assert token == tokens.token_make(purpose=purpose, profile=profile, newsletter=newsletter)
    assert token == signing.dumps(
        {"p": profile_id} | ({} if newsletter_id is None else {"n": newsletter_id}),
        salt=purpose,
        compress=False,
    )
    assert tokens.token_read(token=token, purpose=purpose) == (profile_id, newsletter_id)


class _Named:
    def __init__(self, *, pk):
        self.pk = pk
