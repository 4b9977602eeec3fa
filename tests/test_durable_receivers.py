"""Durable receivers: recorded in the sender's transaction, run after commit, retried,
dead-lettered, replayed."""

import pytest
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from signalpost.durable.models import DeadLetter
from signalpost.durable.services import dead_letter_replay
from tests import durable_receivers
from tests.durable_helpers import run_worker_until_idle
from tests.durable_receivers import probe, read_log
from tests.factories import make_profile

pytestmark = pytest.mark.django_db(transaction=True)


def runs(test_dir, event="ran"):
    return [line for line in read_log(test_dir) if line["event"] == event]


def send_probe(label, profile=None):
    probe.send(sender=None, profile=profile or make_profile(), label=label)


def test_a_rolled_back_send_leaves_no_task(test_dir):
    with pytest.raises(RuntimeError), transaction.atomic():
        send_probe("ok")
        assert DBTaskResult.objects.count() == 1
        raise RuntimeError("the request failed")

    assert DBTaskResult.objects.count() == 0
    run_worker_until_idle()
    assert runs(test_dir) == []


def test_sending_runs_nothing_until_a_worker_runs_it_once(test_dir):
    profile = make_profile(email="jane@example.com")
    with transaction.atomic():
        send_probe("ok", profile)
    assert runs(test_dir) == []

    run_worker_until_idle()
    run_worker_until_idle()

    ran = runs(test_dir)
    assert len(ran) == 1
    assert ran[0]["email"] == "jane@example.com"
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL


def test_the_worker_reads_the_committed_row_not_a_stale_copy(test_dir):
    profile = make_profile(email="old@example.com")
    with transaction.atomic():
        send_probe("ok", profile)
        profile.email = "new@example.com"
        profile.save()

    run_worker_until_idle()
    assert runs(test_dir, "done")[0]["email"] == "new@example.com"


def test_a_receiver_failing_twice_runs_three_times_and_succeeds(test_dir):
    send_probe("fail-twice")
    run_worker_until_idle()

    ran = runs(test_dir)
    assert [line["attempt"] for line in ran] == [1, 2, 3]
    assert len({line["key"] for line in ran}) == 1, "one idempotency key for every attempt"
    assert len(runs(test_dir, "done")) == 1
    statuses = sorted(DBTaskResult.objects.values_list("status", flat=True))
    assert statuses == ["FAILED", "FAILED", "SUCCESSFUL"]
    assert DeadLetter.objects.count() == 0


def test_a_receiver_that_always_fails_is_dead_lettered_and_replays_once_fixed(test_dir):
    send_probe("always-fail")
    run_worker_until_idle()

    assert len(runs(test_dir)) == 3, "max_attempts=3"
    dead_letter = DeadLetter.objects.get()
    assert dead_letter.status == DeadLetter.Status.DEAD
    assert dead_letter.receiver == "tests.record_probe"
    assert dead_letter.attempts == 3
    assert "the mail server said no" in dead_letter.last_error
    assert dead_letter.error_class == "builtins.RuntimeError"

    (test_dir / "fixed").touch()
    call_command("replay_dead_letters", str(dead_letter.pk), stdout=None)
    run_worker_until_idle()

    assert len(runs(test_dir, "done")) == 1
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetter.Status.RESOLVED
    assert dead_letter.replay_count == 1
    keys = {line["key"] for line in runs(test_dir)}
    assert keys == {dead_letter.idempotency_key}


def test_a_replay_that_fails_again_returns_to_the_same_dead_letter(test_dir):
    send_probe("always-fail")
    run_worker_until_idle()
    dead_letter = DeadLetter.objects.get()

    assert dead_letter_replay(dead_letter=dead_letter) is True
    assert dead_letter_replay(dead_letter=dead_letter) is False, "replaying twice queues once"
    run_worker_until_idle()

    assert DeadLetter.objects.count() == 1
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetter.Status.DEAD
    assert len(runs(test_dir)) == 6


def test_a_call_whose_row_was_deleted_is_dead_lettered_without_retrying(test_dir):
    profile = make_profile()
    send_probe("ok", profile)
    profile.delete()
    run_worker_until_idle()

    assert runs(test_dir) == []
    dead_letter = DeadLetter.objects.get()
    assert dead_letter.attempts == 1
    assert "no longer exists" in dead_letter.last_error


def test_an_argument_that_cannot_travel_fails_the_send(test_dir):
    with pytest.raises(TypeError, match="argument 'label'"):
        probe.send(sender=None, profile=make_profile(), label=object())
    assert DBTaskResult.objects.count() == 0


def test_the_signals_command_shows_durable_receivers_and_their_policy():
    from io import StringIO

    out = StringIO()
    call_command("signals", stdout=out, no_color=True)
    output = out.getvalue()
    assert "durable tests.durable_receivers.record_probe" in output
    assert "retry: max 3 attempts" in output
    assert durable_receivers.record_probe.durable_policy.max_attempts == 3


def test_replay_command_refuses_unknown_ids_and_needs_a_choice():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No dead letter with id 999"):
        call_command("replay_dead_letters", "999")
    with pytest.raises(CommandError, match="--all"):
        call_command("replay_dead_letters")
