"""The catalogue's signals enforce their declared arguments."""

import asyncio

import pytest

from signalpost.dispatch import DeclaredSignal
from signalpost.newsletters.services import subscribe, subscription_confirm
from signalpost.newsletters.suppressions import suppressions_add
from signalpost.signals import (
    CATALOGUE,
    address_suppressed,
    suppression_lifted,
    user_subscribed,
)
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder

ARGUMENTS = {
    "profile": "p",
    "newsletter": "n",
    "subscription": "s",
    "user_email": "jane@example.com",
    "source": "form",
}


def test_send_with_a_missing_argument_raises_type_error_naming_it():
    arguments = dict(ARGUMENTS)
    del arguments["user_email"]
    with pytest.raises(TypeError, match=r"user_subscribed.*missing.*'user_email'"):
        user_subscribed.send(sender=None, **arguments)


def test_send_with_an_unknown_argument_raises_type_error_naming_it():
    with pytest.raises(TypeError, match=r"user_subscribed.*unexpected.*'user'"):
        user_subscribed.send(sender=None, user="jane", **ARGUMENTS)


def test_send_robust_checks_arguments_too():
    with pytest.raises(TypeError, match="'source'"):
        user_subscribed.send_robust(
            sender=None, **{key: value for key, value in ARGUMENTS.items() if key != "source"}
        )


def test_a_wrong_send_runs_no_receiver():
    calls = []
    signal = DeclaredSignal("probe", arguments=("user_email",))
    signal.connect(lambda sender, **kwargs: calls.append(kwargs), weak=False)
    with pytest.raises(TypeError):
        signal.send(sender=None)
    assert calls == []


def test_receivers_get_exactly_the_declared_arguments():
    calls = []
    signal = DeclaredSignal("probe", arguments=("user_email",), optional_arguments=("name",))
    signal.connect(lambda sender, **kwargs: calls.append(kwargs), weak=False)
    signal.send(sender=None, user_email="jane@example.com")
    signal.send(sender=None, user_email="sam@example.com", name="Sam")
    assert calls == [
        {"signal": signal, "user_email": "jane@example.com"},
        {"signal": signal, "user_email": "sam@example.com", "name": "Sam"},
    ]


def test_asend_checks_arguments():
    signal = DeclaredSignal("probe", arguments=("user_email",))
    with pytest.raises(TypeError, match="'user_email'"):
        asyncio.run(signal.asend(sender=None))


def test_every_catalogue_signal_is_named_and_documented():
    names = [signal.name for signal in CATALOGUE]
    assert len(names) == len(set(names))
    for signal in CATALOGUE:
        assert signal.__doc__, signal.name
    subscription_signals = [s for s in CATALOGUE if "subscription" in s.arguments]
    assert {s.name for s in subscription_signals} >= {
        "subscription_requested",
        "user_subscribed",
        "user_unsubscribed",
    }
    for signal in subscription_signals:
        assert "user_email" in signal.arguments


def test_a_suppression_sends_address_suppressed_once_with_its_declared_arguments(db):
    weekly = make_newsletter(slug="weekly")
    with SignalRecorder(address_suppressed) as recorded:
        suppressions_add(
            entries=[
                ("a@example.com", "unsubscribed", None),
                ("b@example.com", "unsubscribed", None),
            ],
            newsletter=weekly,
            source="import:listmonk",
        )

    [call] = recorded.calls
    assert set(call) == {"signal", *address_suppressed.arguments}
    assert call["emails"] == ["a@example.com", "b@example.com"]


def test_a_confirmation_that_lifts_a_suppression_sends_suppression_lifted_once(db):
    weekly = make_newsletter(slug="weekly", opt_in="single")
    suppressions_add(
        entries=[("a@example.com", "cleaned", None)], newsletter=None, source="import:mailchimp"
    )
    pending = subscribe(email="a@example.com", newsletter=weekly, source="form")
    with SignalRecorder(suppression_lifted) as recorded:
        subscription_confirm(subscription=pending)
        subscription_confirm(subscription=pending)

    [call] = recorded.calls
    assert set(call) == {"signal", *suppression_lifted.arguments}
    assert (call["user_email"], call["newsletter"]) == ("a@example.com", weekly)


def _in_a_sequence(newsletter, **fields):
    from signalpost.automations.services import automation_activate, automation_create

    automation = automation_create(
        newsletter=newsletter,
        name="Sequence",
        trigger="subscribed",
        steps=[{"kind": "wait", "config": {"seconds": 86400}}],
        **fields,
    )
    return automation_activate(automation=automation)


def _leave_by(way, newsletter, email):
    from signalpost.accounts.services import profile_tags_set
    from signalpost.newsletters.services import bounce_record, complaint_record, unsubscribe

    if way == "unsubscribed":
        unsubscribe(email=email, newsletter=newsletter, reason="form")
    elif way == "bounced":
        bounce_record(email=email, permanent=True, description="550 no such user")
    elif way == "complained":
        complaint_record(email=email, description="spam")
    else:
        subscription = newsletter.subscriptions.get(profile__email=email)
        profile_tags_set(profile=subscription.profile, names=["customer"], source="api")


@pytest.mark.parametrize("way", ["unsubscribed", "bounced", "complained", "tagged customer"])
def test_each_way_out_of_an_automation_sends_enrollment_exited_once(db, way):
    from signalpost.automations.models import Enrollment
    from signalpost.signals import enrollment_exited

    weekly = make_newsletter(slug="weekly", opt_in="single")
    automation = _in_a_sequence(weekly, exit_tag="customer")
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")
    subscribe(email="bob@example.com", newsletter=weekly, source="admin")
    with SignalRecorder(enrollment_exited) as recorded:
        _leave_by(way, weekly, "ann@example.com")
        _leave_by("unsubscribed", weekly, "ann@example.com")

    [call] = recorded.calls
    assert set(call) == {"signal", *enrollment_exited.arguments}
    assert (call["automation"], call["profile"].email, call["reason"]) == (
        automation,
        "ann@example.com",
        way,
    )
    assert call["enrollment"] == Enrollment.objects.get(status="exited")
    assert (call["enrollment"].status, call["enrollment"].exit_reason) == ("exited", way)
    assert Enrollment.objects.get(profile__email="bob@example.com").status == "active"


def test_enrollment_exited_rolls_back_with_the_unsubscribe(db):
    from django.db import transaction

    from signalpost.automations.models import Enrollment
    from signalpost.newsletters.services import unsubscribe
    from signalpost.signals import enrollment_exited

    weekly = make_newsletter(slug="weekly", opt_in="single")
    _in_a_sequence(weekly)
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")

    def refuse(sender, **kwargs):
        raise RuntimeError("a receiver that fails")

    enrollment_exited.connect(refuse, dispatch_uid="tests.refuse")
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            unsubscribe(email="ann@example.com", newsletter=weekly, reason="form")
    finally:
        enrollment_exited.disconnect(dispatch_uid="tests.refuse")
    assert Enrollment.objects.get().status == "active", "in the unsubscribe's transaction"
