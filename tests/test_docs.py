"""The documents a newcomer, an operator or an integrator relies on stay usable.

The README stays short and opens with the two commands; every relative link in the
README, CONTRIBUTING.md, bench/README.md and docs/ leads to a file (and heading) that exists; every
environment variable the code reads is documented in docs/configuration.md.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [
    README,
    ROOT / "CONTRIBUTING.md",
    ROOT / "bench" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# Where the code reads the environment: settings, its parsers, the production start.
CONFIGURATION_SOURCES = ["signalpost/settings.py", "signalpost/config.py", "signalpost/cli.py"]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
ENVIRONMENT_READ = re.compile(
    r"""(?:\b(?:ENV|environ)\.get\(\s*|\benv_\w+\(\s*(?:ENV|environ),\s*)"([A-Z][A-Z0-9_]*)\""""
)


def _heading_anchors(path):
    """GitHub's anchors for the Markdown headings of ``path`` (code blocks left out)."""
    text = FENCE.sub("", path.read_text())
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def _relative_links(path):
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        yield target


def test_readme_is_at_most_10000_characters():
    assert len(README.read_text()) <= 10_000


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = FENCE.search(text)
    assert first_block is not None
    assert "\n## " not in text[: first_block.start()], "the commands come before any section"
    commands = [line.split("#")[0].strip() for line in first_block.group().splitlines()[1:-1]]
    assert commands == ["./bin/serve", "./bin/test"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document):
    broken = []
    for link in _relative_links(document):
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _heading_anchors(path):
            broken.append(f"{link}: no heading #{anchor}")
    assert broken == []


def test_every_environment_variable_read_is_in_the_configuration_page():
    names = set()
    for source in CONFIGURATION_SOURCES:
        names |= set(ENVIRONMENT_READ.findall((ROOT / source).read_text()))
    assert {"DATABASE_URL", "SECRET_KEY", "SUBSCRIBE_RATE_PER_IP", "TASK_WORKERS"} <= names
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in configuration)
    assert missing == []


def test_every_signalpost_setting_is_in_the_configuration_page():
    from signalpost.conf import DEFAULTS, PREFIX

    configuration = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in DEFAULTS if f"`{PREFIX}{name}`" not in configuration)
    assert missing == []


def test_no_app_reads_a_signalpost_setting_around_signalpost_conf():
    """A host project sets only what it changes: every app reads its settings with their
    defaults through signalpost.conf, never straight from django.conf.settings."""
    from signalpost.conf import DEFAULTS

    own = "|".join(["SIGNALPOST_[A-Z_]+", *DEFAULTS])
    direct = re.compile(rf"\bsettings\.({own})\b")
    found = [
        f"{path.relative_to(ROOT)}: settings.{match.group(1)}"
        for path in sorted((ROOT / "signalpost").rglob("*.py"))
        if path.name != "settings.py"
        for match in direct.finditer(path.read_text())
    ]
    assert found == []
