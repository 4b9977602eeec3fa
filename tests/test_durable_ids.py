"""Durable receivers have declared ids: queued calls name them, the checks watch them, and
calls queued under the old form (the import path) still run."""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from signalpost.dispatch import DeclaredSignal
from signalpost.durable import decorators
from signalpost.durable.checks import durable_receivers_check, queued_calls_check
from signalpost.durable.decorators import durable, durable_receiver
from signalpost.durable.models import DeadLetter
from signalpost.durable.tasks import run_durable_receiver
from signalpost.introspection import receivers_of
from signalpost.webhooks.events import ERASED_EVENT, EVENTS
from tests.durable_helpers import database_url_of_test_database, run_worker_until_idle
from tests.durable_receivers import probe, read_log
from tests.factories import make_profile

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry():
    """Declarations a test makes vanish with it."""
    saved = (
        dict(decorators.DURABLE_RECEIVERS),
        dict(decorators._FORMER_NAMES),
        list(decorators.DUPLICATES),
        list(decorators.DECLARED_WRAPPERS),
    )
    yield
    decorators.DURABLE_RECEIVERS.clear()
    decorators.DURABLE_RECEIVERS.update(saved[0])
    decorators._FORMER_NAMES.clear()
    decorators._FORMER_NAMES.update(saved[1])
    decorators.DUPLICATES[:] = saved[2]
    decorators.DECLARED_WRAPPERS[:] = saved[3]


def queue_call(receiver, *, label="ok", key="k1"):
    """Queue a probe call naming ``receiver`` as a row written before this change would."""
    profile = make_profile()
    return run_durable_receiver.enqueue(
        receiver=receiver,
        signal="test_probe",
        sender=None,
        payload={"profile": {"$model": "accounts.profile", "pk": profile.pk}, "label": label},
        idempotency_key=key,
        attempt=1,
        dead_letter_id=None,
    ).id


def ran(test_dir):
    return [line for line in read_log(test_dir) if line["event"] == "ran"]


def messages(check):
    return {message.id: message for message in check()}


def test_a_queued_call_names_the_receivers_id_not_its_import_path(test_dir):
    probe.send(sender=None, profile=make_profile(), label="ok")
    [row] = DBTaskResult.objects.all()
    assert row.args_kwargs["kwargs"]["receiver"] == "tests.record_probe"


def test_a_call_queued_under_the_old_import_path_still_runs(test_dir):
    queue_call("tests.durable_receivers.record_probe")
    run_worker_until_idle()
    assert [line["label"] for line in ran(test_dir)] == ["ok"]
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL


def test_a_call_queued_under_a_former_id_runs_under_the_new_one(test_dir):
    queue_call("tests.probe_before_its_rename")
    run_worker_until_idle()
    assert len(ran(test_dir)) == 1
    assert messages(queued_calls_check) == {}


def test_a_call_for_an_unknown_id_is_reported_with_the_fix_and_runs_once_renamed(test_dir):
    queue_call("tests.moved_away")
    [warning] = queued_calls_check()
    assert warning.id == "durable.W003"
    assert "'tests.moved_away'" in warning.msg
    assert "durable_calls tests.moved_away --rename-to" in warning.hint
    assert "--discard" in warning.hint
    assert "durable.W003" in manage_py_check().stderr

    out = StringIO()
    call_command("durable_calls", stdout=out)
    assert "tests.moved_away: 1 call(s)" in out.getvalue()
    call_command(
        "durable_calls", "tests.moved_away", "--rename-to", "tests.record_probe", stdout=out
    )
    assert queued_calls_check() == []
    run_worker_until_idle()
    assert len(ran(test_dir)) == 1


def test_discarding_drops_the_calls_and_dead_letters_of_an_unknown_id(test_dir):
    queue_call("tests.moved_away")
    DeadLetter.objects.create(
        receiver="tests.moved_away",
        signal_name="test_probe",
        payload={},
        idempotency_key="k2",
        attempts=1,
        error_class="x",
        last_error="x",
        failed_at="2026-01-01T00:00:00Z",
    )
    assert messages(queued_calls_check)["durable.W003"].msg.startswith("2 durable call(s)")
    call_command("durable_calls", "tests.moved_away", "--discard", stdout=StringIO())
    assert DBTaskResult.objects.count() == 0
    assert DeadLetter.objects.count() == 0
    assert queued_calls_check() == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--discard"], "Name the receiver id"),
        (["x", "--discard", "--rename-to", "tests.record_probe"], "exactly one"),
        (["x"], "exactly one"),
        (["x", "--rename-to", "tests.nothing"], "No durable receiver has the id"),
        (["x", "--rename-to", "tests.probe_before_its_rename"], "No durable receiver has the id"),
        (["x", "--rename-to", "'; DROP TABLE x; --"], "No durable receiver has the id"),
    ],
)
def test_durable_calls_refuses_a_missing_or_unknown_target(arguments, error):
    with pytest.raises(CommandError, match=error):
        call_command("durable_calls", *arguments, stdout=StringIO())


def test_manage_py_check_passes_on_the_project_as_it_is():
    checked = manage_py_check()
    assert checked.returncode == 0, checked.stderr
    assert "durable." not in checked.stdout + checked.stderr


def manage_py_check():
    """Run ``manage.py check`` in a process of its own, on the test database."""
    env = {**os.environ, "DATABASE_URL": database_url_of_test_database()}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_checks_report_an_old_form_receiver_and_one_connected_to_no_signal(registry):
    def old_style(sender, **kwargs): ...

    old_style.__qualname__ = "old_style"
    durable(old_style)  # never connected: @durable above @receiver does this
    found = messages(durable_receivers_check)
    assert "tests.test_durable_ids.old_style has no id" in found["durable.W001"].msg
    assert "@durable_receiver(signal, id=...)" in found["durable.W001"].hint
    assert "connected to no signal" in found["durable.E004"].msg


def test_the_checks_report_two_receivers_with_one_id(registry):
    signal = DeclaredSignal("test_duplicate_ids", arguments=(), doc="Tests only.")

    def first(sender, **kwargs): ...

    def second(sender, **kwargs): ...

    first.__qualname__, second.__qualname__ = "first", "second"
    durable_receiver(signal, id="tests.same")(first)
    durable_receiver(signal, id="tests.same")(second)
    error = messages(durable_receivers_check)["durable.E002"]
    assert "'tests.same'" in error.msg
    assert "first" in error.msg and "second" in error.msg
    DeclaredSignal.by_name.pop("test_duplicate_ids")


def test_a_durable_receiver_must_have_an_id():
    with pytest.raises(TypeError, match="needs id="):
        durable_receiver(probe, id="")
    with pytest.raises(TypeError, match="needs id="):
        durable_receiver(probe, id=None)  # type: ignore[arg-type]


def test_every_webhook_event_has_a_receiver_whose_id_grep_finds():
    source = (ROOT / "signalpost/webhooks/receivers.py").read_text()
    for event, (signal, _build) in EVENTS.items():
        if event == ERASED_EVENT:
            continue
        uid = f"webhooks.{event}"
        assert uid in {info.dispatch_uid for info in receivers_of(signal) if info.mode == "durable"}
        assert re.search(rf'id="{re.escape(uid)}"', source), f"{uid} is not written out"
