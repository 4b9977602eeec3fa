"""Signalpost installed from its built wheel into the example host site (examples/hostsite).

The wheel is built from this checkout and installed with ``--no-deps`` into a folder put
first on the host's ``PYTHONPATH`` (its dependencies come from the project's ``.venv``), so
the host runs the installed copy, never the repository's. Then, in Chromium against the
host's own server and worker, with mail through a real SMTP server on loopback: a member
signs up on the host, subscribes from their account page in one click, receives an issue,
and leaves in one click from the email.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.test_site_hygiene_in_browser import _axe_required, fit_and_axe_problems
from tests.mail import free_port, html_part, smtp_server_start

ROOT = Path(__file__).resolve().parents[2]
# The host keeps a SQLite database of its own whatever the suite runs on: once is enough.
pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the host runs on its own SQLite database; it is tested in the SQLite pass",
)
EXAMPLE = ROOT / "examples" / "hostsite"
WIDTHS = (1280, 390)
EMAIL = "ada@riverside.example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel from a copy of the package and install it for the host alone."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    shutil.copytree(
        ROOT / "signalpost",
        source / "signalpost",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    dist = work / "dist"
    subprocess.run(
        [*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(dist)],
        cwd=source,
        check=True,
    )
    [wheel] = dist.glob("signalpost-*.whl")
    site = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


class Host:
    """The example host site's processes: its web server and its task worker."""

    def __init__(self, *, site, workdir, smtp_port):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {
            **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
            "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)]),
            "DJANGO_SETTINGS_MODULE": "hostsite.settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'host.sqlite3'}",
            "HOSTSITE_SMTP_PORT": str(smtp_port),
            "HOSTSITE_URL": self.url,
            "PYTHONUNBUFFERED": "1",
        }
        self.processes = []

    def manage(self, *args):
        """Run ``manage.py`` of the host with its settings; return what it printed."""
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, name, *args):
        log = (self.workdir / f"{name}.log").open("w")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, str(EXAMPLE / "manage.py"), *args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def log(self, name):
        return (self.workdir / f"{name}.log").read_text()

    def wait_until_serving(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the host's server did not start:\n" + self.log("web"))

    def stop(self):
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def inbox():
    controller, inbox, port = smtp_server_start()
    inbox.port = port
    yield inbox
    controller.stop()


@pytest.fixture
def host(installed, inbox, tmp_path):
    host = Host(site=installed, workdir=tmp_path, smtp_port=inbox.port)
    host.manage("migrate", "--verbosity=0")
    host.manage(
        "shell",
        "--no-imports",
        "-c",
        "from signalpost.newsletters.models import Newsletter; Newsletter.objects.create("
        "slug='club-news', name='Club News', opt_in='double', "
        "description='Race results and club runs, weekly.')",
    )
    host.start("web", "runserver", f"127.0.0.1:{host.port}", "--noreload", "--nothreading")
    host.start("worker", "db_worker", "--no-reload", "--no-startup-delay", "--interval=0.1")
    host.wait_until_serving()
    yield host
    host.stop()


def test_the_host_runs_the_installed_wheel_not_the_repository(installed, tmp_path):
    host = Host(site=installed, workdir=tmp_path, smtp_port=0)
    location = host.manage(
        "shell", "--no-imports", "-c", "import signalpost; print(signalpost.__file__)"
    )
    assert Path(location.strip()).is_relative_to(installed)
    assert not Path(location.strip()).is_relative_to(ROOT)
    # The templates, static files and migrations came with it.
    for shipped in (
        "newsletters/templates/newsletters/home.html",
        "newsletters/templates/signalpost/your_newsletters.html",
        "static/signalpost/site.css",
        "newsletters/migrations/0001_initial.py",
    ):
        assert (installed / "signalpost" / shipped).exists(), shipped
    assert "System check identified no issues" in host.manage("check")


def look(page, screenshot, name):
    """Screenshot the page at each width; return what is wrong with it (fit_and_axe_problems)."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        screenshot(page, f"{name}-{width}")
        problems += fit_and_axe_problems(page, name, width)
    return problems


def test_a_member_signs_up_subscribes_receives_an_issue_and_leaves_in_one_click(
    browser, host, inbox, screenshot
):
    _axe_required()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        # Signs up on the host, which signs them in and shows their account page.
        page.goto(host.url + "/signup/")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Display name").fill("Ada")
        page.get_by_label("Password", exact=True).fill("a long club password 42")
        page.get_by_label("Password confirmation").fill("a long club password 42")
        page.get_by_role("button", name="Join").click()
        page.wait_for_url(host.url + "/account/")
        assert page.get_by_text("Not subscribed").is_visible()

        # One click: the host verified the address, so no confirmation email.
        page.get_by_role("button", name="Subscribe to Club News").click()
        page.wait_for_url(host.url + "/account/")
        assert page.get_by_text("Subscribed", exact=True).is_visible()
        problems = look(page, screenshot, "account-subscribed")
        [welcome] = inbox.wait_for(1, timeout=20)
        assert welcome["To"] == EMAIL
        assert welcome["Subject"] == "Welcome to Club News"

        # Staff send an issue through the host's configuration; its worker delivers it.
        slug = host.manage(
            "shell",
            "--no-imports",
            "-c",
            "from signalpost.newsletters.models import Newsletter\n"
            "from signalpost.publishing.services import issue_create\n"
            "issue = issue_create(newsletter=Newsletter.objects.get(slug='club-news'), "
            "subject='Saturday results', body_markdown='Ada ran **5 km**.')\n"
            "print(issue.slug)",
        ).strip()
        host.manage("send_issue", "club-news", slug)
        messages = inbox.wait_for(2, timeout=30)
        [issue] = [message for message in messages if message["Subject"] == "Saturday results"]
        unsubscribe = issue["List-Unsubscribe"].strip("<>")
        assert unsubscribe.startswith(host.url + "/news/n/club-news/unsubscribe/")
        assert "#0f6b4f" in html_part(issue)  # the host's colour
        assert "12 Quay Street" in html_part(issue)  # and its postal address

        # The email's visible unsubscribe link, then one click, in the host's layout.
        link = re.search(r'href="([^"]*/news/n/club-news/unsubscribe/[^"]*)"', html_part(issue))
        page.goto(link.group(1).replace("&amp;", "&"))
        assert page.get_by_text("Riverside Runners").first.is_visible()
        problems += look(page, screenshot, "one-click-unsubscribe")
        page.get_by_role("button", name=re.compile("Unsubscribe")).click()
        page.wait_for_load_state()
        screenshot(page, "unsubscribed")

        page.goto(host.url + "/account/")
        assert page.get_by_text("Not subscribed").is_visible()
        assert problems == []
    finally:
        context.close()

    # The tutorial's signals reached the host's own receivers, with user_email.
    served = host.log("web") + host.log("worker")
    assert f"user_subscribed {EMAIL} to club-news (member {EMAIL})" in served
    assert f"user_unsubscribed {EMAIL} from club-news" in served
