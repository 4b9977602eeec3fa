"""Subscribing and unsubscribing through the services, and what the receivers write."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import (
    ConsentEvidence,
    subscribe,
    subscription_confirm,
    unsubscribe,
)
from signalpost.signals import subscription_requested, user_subscribed, user_unsubscribed
from tests.factories import make_profile
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db

FORM = Subscription.Source.FORM


def events(profile):
    return list(
        Activity.objects.filter(profile=profile).order_by("id").values_list("event", flat=True)
    )


def test_single_opt_in_subscribe_activates_and_updates_the_profile(newsletter):
    with SignalRecorder(user_subscribed) as recorder:
        subscription = subscribe(email="Jane@Example.com", newsletter=newsletter, source=FORM)

    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.subscribed_at is not None
    profile = Profile.objects.get(email="jane@example.com")
    assert list(profile.subscriptions.all()) == [newsletter]
    assert events(profile) == ["subscribed"]
    assert len(recorder.calls) == 1
    assert recorder.calls[0]["user_email"] == "jane@example.com"
    assert recorder.calls[0]["subscription"] == subscription


def test_double_opt_in_subscribe_is_pending_until_confirmed(double_opt_in_newsletter):
    with SignalRecorder(subscription_requested) as requested:
        subscription = subscribe(
            email="jane@example.com", newsletter=double_opt_in_newsletter, source=FORM
        )
    profile = subscription.profile

    assert subscription.status == Subscription.Status.PENDING
    assert len(requested.calls) == 1
    assert list(profile.subscriptions.all()) == []

    with SignalRecorder(user_subscribed) as subscribed:
        subscription_confirm(subscription=subscription)
        subscription_confirm(subscription=subscription)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert len(subscribed.calls) == 1
    assert list(profile.subscriptions.all()) == [double_opt_in_newsletter]
    assert events(profile) == ["subscription_requested", "subscribed"]


def test_subscribing_an_active_address_again_changes_nothing(newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)
    with SignalRecorder(user_subscribed) as recorder:
        subscribe(email="JANE@example.com", newsletter=newsletter, source=FORM)

    assert recorder.calls == []
    assert Subscription.objects.count() == 1
    assert events(Profile.objects.get()) == ["subscribed"]


def test_a_new_address_gets_a_profile_with_the_name_given(newsletter):
    subscription = subscribe(
        email=" Jane@Example.com ", name="Jane\nDoe", newsletter=newsletter, source=FORM
    )

    profile = Profile.objects.get()
    assert subscription.profile == profile
    assert (profile.email, profile.name) == ("jane@example.com", "Jane Doe")
    assert profile.created_at is not None
    assert profile.attributes == {}


def test_subscribing_a_known_address_does_not_rename_it(newsletter, double_opt_in_newsletter):
    subscribe(email="jane@example.com", name="Jane", newsletter=newsletter, source=FORM)
    subscription = subscribe(
        email="jane@example.com",
        name="Someone Else",
        newsletter=double_opt_in_newsletter,
        source=FORM,
    )

    assert Profile.objects.get().name == "Jane"
    assert subscription.profile == Profile.objects.get()


def test_an_address_stored_in_another_case_is_the_same_person(newsletter):
    # Rows written before addresses were normalised, or by hand, keep their case.
    existing = make_profile(email="Jane@Example.COM", name="Jane")
    with SignalRecorder(user_subscribed) as recorder:
        subscription = subscribe(
            email="jane@example.com", name="Other", newsletter=newsletter, source=FORM
        )

    assert Profile.objects.count() == 1
    assert subscription.profile == existing
    assert recorder.calls[0]["user_email"] == "Jane@Example.COM"
    assert Profile.objects.get().name == "Jane"


def test_profile_save_signals_still_fire_for_code_that_listens(newsletter):
    make_profile(email="Known@Example.com")
    with SignalRecorder(pre_save) as before, SignalRecorder(post_save) as after:
        subscribe(email="jane@example.com", name="Jane", newsletter=newsletter, source=FORM)
        subscribe(email="known@example.com", newsletter=newsletter, source=FORM)

    [saving] = [call for call in before.calls if isinstance(call["instance"], Profile)]
    [saved] = [call for call in after.calls if isinstance(call["instance"], Profile)]
    assert saving["instance"].email == "jane@example.com"
    assert saved["created"] is True
    assert saved["instance"].pk == Profile.objects.get(email="jane@example.com").pk
    assert Profile.objects.count() == 2


def test_consent_evidence_is_recorded(newsletter):
    consent = ConsentEvidence(
        at=timezone.now(), ip="203.0.113.9", user_agent="Mozilla/5.0 " + "x" * 1000
    )
    subscription = subscribe(
        email="jane@example.com", newsletter=newsletter, source=FORM, consent=consent
    )
    subscription.refresh_from_db()
    assert subscription.consent_ip == "203.0.113.9"
    assert subscription.consent_at == consent.at
    assert subscription.consent_user_agent.startswith("Mozilla/5.0")
    assert len(subscription.consent_user_agent) == 500
    assert subscription.source == "form"


def test_unsubscribe_ends_the_subscription_and_updates_the_profile(newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)
    with SignalRecorder(user_unsubscribed) as recorder:
        ended = unsubscribe(email="jane@example.com", newsletter=newsletter, reason="too many")

    assert ended.status == Subscription.Status.UNSUBSCRIBED
    assert ended.unsubscribed_at is not None
    assert ended.unsubscribe_reason == "too many"
    profile = Profile.objects.get()
    assert list(profile.subscriptions.all()) == []
    assert events(profile) == ["subscribed", "unsubscribed"]
    assert recorder.calls[0]["reason"] == "too many"
    assert recorder.calls[0]["user_email"] == "jane@example.com"


def test_unsubscribing_someone_not_subscribed_does_nothing(newsletter):
    with SignalRecorder(user_unsubscribed) as recorder:
        assert unsubscribe(email="nobody@example.com", newsletter=newsletter, reason="") is None
        assert unsubscribe(email="not an address", newsletter=newsletter, reason="") is None
    assert recorder.calls == []
    assert Profile.objects.count() == 0


def test_resubscribing_after_unsubscribing_activates_again(newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)
    unsubscribe(email="jane@example.com", newsletter=newsletter, reason="")
    subscription = subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)

    assert subscription.status == Subscription.Status.ACTIVE
    assert events(subscription.profile) == ["subscribed", "unsubscribed", "subscribed"]


def test_an_import_never_resubscribes_someone_who_left(newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)
    unsubscribe(email="jane@example.com", newsletter=newsletter, reason="")
    subscription = subscribe(
        email="jane@example.com", newsletter=newsletter, source=Subscription.Source.IMPORT
    )
    assert subscription.status == Subscription.Status.UNSUBSCRIBED


@pytest.mark.parametrize(
    "email", ["", "   ", "jane", "jane@", "a@b@example.com", "jane@example.com\r\nBcc: x@y.z"]
)
def test_an_invalid_address_is_refused_and_writes_nothing(newsletter, email):
    with pytest.raises(ValidationError):
        subscribe(email=email, newsletter=newsletter, source=FORM)
    assert Profile.objects.count() == 0
    assert Subscription.objects.count() == 0


def test_an_oversized_address_is_refused(newsletter):
    with pytest.raises(ValidationError):
        subscribe(email="a" * 250 + "@example.com", newsletter=newsletter, source=FORM)
    assert Profile.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_subscribe_that_fails_in_its_transaction_leaves_nothing(newsletter):
    def fail_after_the_other_receivers(sender, **kwargs):
        raise RuntimeError("receiver failed")

    user_subscribed.connect(
        fail_after_the_other_receivers, weak=False, dispatch_uid="test.fail_after"
    )
    try:
        with pytest.raises(RuntimeError, match="receiver failed"):
            subscribe(email="jane@example.com", newsletter=newsletter, source=FORM)
    finally:
        user_subscribed.disconnect(dispatch_uid="test.fail_after")

    assert Subscription.objects.count() == 0
    assert Activity.objects.count() == 0
    assert Profile.objects.count() == 0
    assert not transaction.get_connection().in_atomic_block
