"""The files docs/deploy.md ships under deploy/ are valid as shipped."""

import shutil
import subprocess
from pathlib import Path

import pytest

from signalpost.config import production_problems

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ["signalpost-web.service", "signalpost-worker.service"]


def env_example():
    lines = (DEPLOY / "env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return dict(pairs)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_verify(tmp_path):
    # Installed at /srv/signalpost as the guide says; here, at this checkout.
    for unit in UNITS:
        text = (DEPLOY / unit).read_text()
        assert "/srv/signalpost/.venv/bin/signalpost " in text
        text = text.replace("/srv/signalpost", str(ROOT))
        text = text.replace("/etc/signalpost/env", str(DEPLOY / "env.example"))
        (tmp_path / unit).write_text(text)
    verified = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / unit) for unit in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr
    assert "Unknown" not in verified.stderr, verified.stderr


def test_the_example_environment_passes_the_check_once_given_a_secret_key():
    example = env_example()
    assert [problem.split()[0] for problem in production_problems(example)] == ["SECRET_KEY"]
    assert production_problems({**example, "SECRET_KEY": "r" * 64}) == []
