"""``manage.py signals`` shows the catalogue and who listens to what."""

import json
from io import StringIO

from django.core.management import call_command

from signalpost.signals import CATALOGUE, user_subscribed


def run_signals_command(*args):
    out = StringIO()
    call_command("signals", *args, stdout=out, no_color=True)
    return out.getvalue()


def test_lists_every_catalogue_signal_with_its_arguments():
    output = run_signals_command()
    for signal in CATALOGUE:
        assert f"{signal.name}({', '.join(signal.arguments)})" in output


def test_lists_each_receiver_with_module_sender_mode_and_dispatch_uid():
    output = run_signals_command()
    assert (
        "sync    signalpost.accounts.receivers.profile_add_subscription  sender=any  "
        "dispatch_uid=accounts.profile_add_subscription"
    ) in output
    assert (
        "signalpost.accounts.receivers.profile_create_or_link_for_user  sender=auth.User  "
        "dispatch_uid=accounts.profile_link_user"
    ) in output
    assert "signalpost.activity.receivers.activity_record_user_logged_in" in output


def test_a_receiver_connected_later_shows_up():
    def audit_new_subscriber(sender, **kwargs):
        pass

    user_subscribed.connect(audit_new_subscriber, dispatch_uid="tests.audit")
    try:
        output = run_signals_command()
    finally:
        user_subscribed.disconnect(dispatch_uid="tests.audit")
    assert "audit_new_subscriber  sender=any  dispatch_uid=tests.audit" in output


def test_json_output_is_machine_readable():
    data = json.loads(run_signals_command("--json"))
    by_name = {entry["name"]: entry for entry in data["catalogue"]}
    unsubscribed = by_name["user_unsubscribed"]
    assert unsubscribed["arguments"] == [
        "profile",
        "newsletter",
        "subscription",
        "user_email",
        "reason",
    ]
    assert {receiver["dispatch_uid"] for receiver in unsubscribed["receivers"]} == {
        "accounts.profile_remove_subscription",
        "activity.record_unsubscribed",
        "automations.exit_unsubscribed",
        "engagement.forget_unsubscribed",
        "publishing.deliveries_skip",
        "webhooks.subscriber.unsubscribed",
    }
    assert any(entry["name"] == "post_save" for entry in data["django"])
