"""Signalpost with a host's custom AUTH_USER_MODEL that has no email field.

The model cannot be swapped inside this test process (Profile.user points at the standalone
user model), so the host runs in a process of its own with its own settings and database:
tests/hosts/noemail/. A user model with an email field is the example host's
(tests/browser/test_host_project_in_browser.py) and the standalone's own.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The host keeps a SQLite database of its own whatever the suite runs on: once is enough.
pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the host runs on its own SQLite database; it is tested in the SQLite pass",
)


def test_a_user_model_without_an_email_field_works_through_the_verified_address_hook(tmp_path):
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        "DJANGO_SETTINGS_MODULE": "tests.hosts.noemail.settings",
        "NOEMAIL_DATABASE": str(tmp_path / "host.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.hosts.noemail.scenario"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "a user without an email field gets no profile of its own",
        "without the hook they are told they have no address",
        "with the hook's address they subscribe in one click and user.profile follows",
        "the component lists their newsletter, and asks a visitor to sign in",
        "they leave from the component's toggle",
    ]
