"""Durable receivers for the tests, importable by worker processes the tests start.

Each run appends a JSON line to ``$SIGNALPOST_TEST_DIR/log.jsonl``; the probe's
``label`` says how the receiver behaves ("ok", "fail-twice", "always-fail",
"slow-once", "sleep:SECONDS").
"""

import json
import os
import time
from pathlib import Path

from signalpost.dispatch import DeclaredSignal
from signalpost.durable.decorators import durable_receiver

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


@durable_receiver(
    probe,
    id="tests.record_probe",
    max_attempts=3,
    backoff_base=0,
    backoff_max=0,
    formerly=["tests.probe_before_its_rename"],
)
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


batch_probe = DeclaredSignal("test_batch_probe", arguments=("profile", "label"), doc="Tests only.")


@durable_receiver(
    batch_probe, id="tests.record_batch", max_attempts=2, backoff_base=0, backoff_max=0, batch=True
)
def record_batch(calls):
    """Log one "batch" line with the batch's size, then a "ran" line per call; a call
    labelled "fail" fails alone, "fail-all" fails the whole batch."""
    log("batch", size=len(calls), pid=os.getpid())
    failures = {}
    for call in calls:
        label = call.arguments["label"]
        log("ran", label=label, email=call.arguments["profile"].email, attempt=call.attempt)
        if label == "fail-all":
            raise RuntimeError("the whole batch failed")
        if label == "fail":
            failures[call.idempotency_key] = RuntimeError(f"{label} failed")
        if label.startswith("sleep:"):
            time.sleep(float(label.partition(":")[2]))
    return failures
