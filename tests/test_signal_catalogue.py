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
