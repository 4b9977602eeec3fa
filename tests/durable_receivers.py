"""Durable receivers for the tests, importable by worker processes the tests start.

Each run appends a JSON line to ``$SIGNALPOST_TEST_DIR/log.jsonl``; the probe's
``label`` says how the receiver behaves ("ok", "fail-twice", "always-fail",
"slow-once", "sleep:SECONDS").
"""

import json
import os
import time
from pathlib import Path

from django.dispatch import receiver

from signalpost.dispatch import DeclaredSignal
from signalpost.durable.decorators import durable

probe = DeclaredSignal("test_probe", arguments=("profile", "label"), doc="Tests only.")


def log_dir():
    return Path(os.environ["SIGNALPOST_TEST_DIR"])


def log(event, **fields):
    line = json.dumps({"event": event, "pid": os.getpid(), **fields})
    with open(log_dir() / "log.jsonl", "a") as file:
        file.write(line + "\n")


def read_log(directory):
    path = Path(directory) / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@receiver(probe, dispatch_uid="tests.record_probe")
@durable(max_attempts=3, backoff_base=0, backoff_max=0)
def record_probe(sender, *, profile, label, idempotency_key, attempt, signal, **kwargs):
    fields = {"label": label, "email": profile.email, "key": idempotency_key, "attempt": attempt}
    log("ran", **fields)
    behaviour, _, argument = label.partition(":")
    if behaviour == "fail-twice" and attempt < 3:
        raise RuntimeError(f"temporary failure on attempt {attempt}")
    if behaviour == "always-fail" and not (log_dir() / "fixed").exists():
        raise RuntimeError("the mail server said no")
    if behaviour == "slow-once":
        marker = log_dir() / f"slow-{idempotency_key}"
        if not marker.exists():
            marker.touch()
            log("sleeping", **fields)
            time.sleep(120)
    if behaviour == "sleep":
        time.sleep(float(argument.partition("#")[0]))
    log("done", **fields)
