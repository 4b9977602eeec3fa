"""The documented production start (`signalpost serve`), started for real and stopped."""

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from signalpost.config import production_problems

SAFE = {
    "SECRET_KEY": "s" * 64,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SITE_URL": "https://news.example.com",
}
START_TIMEOUT_SECONDS = 120
ONE_YEAR = 365 * 24 * 3600


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_environment(tmp_path, **overrides):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DEBUG", "SIGNALPOST_MODE", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SAFE)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'production.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        CACHE_URL="locmem:",
        EMAIL_URL="locmem:",
        WEB_CONCURRENCY="1",
        TASK_WORKERS="1",
        WORKER_LEASE_SECONDS="8",
    )
    env.update(overrides)
    return env


def signalpost(*arguments, env):
    return subprocess.run(
        [sys.executable, "-m", "signalpost.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def fetch(url, *, method="GET", headers=None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def stop(server, *, timeout):
    """Stop ``server`` (a Popen) as systemd would: SIGTERM, then SIGKILL after ``timeout``."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def production_site(tmp_path_factory):
    """`signalpost serve` on a free port of 127.0.0.1, on SQLite; stopped after the module."""
    tmp_path = tmp_path_factory.mktemp("production")
    port = free_port()
    env = production_environment(
        tmp_path, SIGNALPOST_ADDRESS=f"127.0.0.1:{port}", BEHIND_HTTPS_PROXY="1"
    )
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "signalpost.cli", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if fetch(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.25)
        yield {"base": base, "server": server, "log": tmp_path / "serve.log"}
    finally:
        stop(server, timeout=60)
        log.close()


def test_every_unsafe_setting_is_named_at_once():
    problems = production_problems(
        {"SECRET_KEY": "short", "DEBUG": "1", "SITE_URL": "http://news.example.com"}
    )
    assert [problem.split()[0] for problem in problems] == [
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "SITE_URL",
    ]


def test_web_threads_and_memory_limits_out_of_range_are_named():
    problems = production_problems({**SAFE, "WEB_THREADS": "0", "WEB_MAX_RSS_MB": "lots"})
    assert [problem.split()[0] for problem in problems] == ["WEB_THREADS", "WEB_MAX_RSS_MB"]
    assert production_problems({**SAFE, "WEB_THREADS": "2", "WEB_MAX_RSS_MB": "256"}) == []


def test_the_start_refuses_an_unsafe_configuration_listing_every_problem(tmp_path):
    refused = signalpost(
        "serve",
        env=production_environment(
            tmp_path, SECRET_KEY="signalpost-development-key-never-use-in-production",
            DEBUG="on", ALLOWED_HOSTS="", SITE_URL="http://news.example.com",
        ),
    )  # fmt: skip
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("  - ")]
    assert [line.split()[1] for line in lines] == [
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "SITE_URL",
    ]
    assert not (tmp_path / "production.sqlite3").exists()  # nothing was started or migrated


def test_plain_http_site_url_is_allowed_only_when_asked(tmp_path):
    http = {"SITE_URL": "http://intranet.example"}
    assert signalpost("check", env=production_environment(tmp_path, **http)).returncode == 2
    allowed = production_environment(tmp_path, **http, SITE_URL_ALLOW_HTTP="1")
    assert signalpost("check", env=allowed).returncode == 0


def test_the_started_site_answers_with_a_worker_alive(production_site):
    status, _, body = fetch(production_site["base"] + "/healthz")
    assert status == 200
    assert b'"alive": true' in body
    status, headers, body = fetch(production_site["base"] + "/", method="HEAD")
    assert (status, body) == (200, b"")
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def assert_served_for_a_year(base, stylesheet):
    assert re.fullmatch(r"/static/.+\.[0-9a-f]{12}\.css", stylesheet), stylesheet
    status, headers, body = fetch(base + stylesheet, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert f"max-age={10 * ONE_YEAR}" in headers["Cache-Control"]
    assert headers["Content-Encoding"] == "gzip"
    assert b"{" in gzip.decompress(body)


def test_the_site_css_is_served_compressed_with_a_hashed_name(production_site):
    base = production_site["base"]
    page = fetch(base + "/")[2].decode()
    (stylesheet,) = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert_served_for_a_year(base, stylesheet)


def test_the_admin_css_is_served_with_a_hashed_name(production_site):
    base = production_site["base"]
    page = fetch(base + "/admin/login/")[2].decode()
    stylesheets = re.findall(r'<link rel="stylesheet" href="(/static/admin/css/[^"]+)"', page)
    assert stylesheets
    for stylesheet in stylesheets:
        assert_served_for_a_year(base, stylesheet)


def test_behind_the_https_proxy_cookies_are_secure_and_hsts_is_sent(production_site):
    _, headers, _ = fetch(
        production_site["base"] + "/subscribe/", headers={"X-Forwarded-Proto": "https"}
    )
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    (csrf_cookie,) = [c for c in headers.get_all("Set-Cookie") if c.startswith("csrftoken=")]
    assert "Secure" in csrf_cookie
    _, plain, _ = fetch(production_site["base"] + "/subscribe/")
    assert "Strict-Transport-Security" not in plain  # HSTS only over HTTPS


def test_an_unknown_url_gets_the_styled_404_page(production_site):
    status, _, body = fetch(production_site["base"] + "/no/such/page/")
    assert status == 404
    assert b"Page not found" in body and b"/static/signalpost/site." in body


def children(pid):
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def web_processes(server):
    """The pids of the web server's processes that run Django (under ``signalpost serve``)."""
    (web,) = [
        pid
        for pid in children(server.pid)
        if b"granian" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return set(children(web))


def test_sighup_reloads_the_web_processes_while_the_site_answers(production_site):
    base, server = production_site["base"], production_site["server"]
    before = web_processes(server)
    assert before
    server.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    statuses = []
    while (now := web_processes(server)) & before or not now:
        statuses.append(fetch(base + "/healthz")[0])  # an OSError here: a refused request
        assert time.monotonic() < deadline, production_site["log"].read_text()
        time.sleep(0.1)
    assert set(statuses) <= {200}
    assert fetch(base + "/healthz")[0] == 200  # the new processes answer
    assert server.poll() is None  # the supervisor kept running


def test_sigterm_stops_web_and_workers(production_site):
    server = production_site["server"]
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    with pytest.raises(OSError):
        fetch(production_site["base"] + "/healthz")
    log = production_site["log"].read_text()
    assert "shutting down gracefully" in log  # the task worker finished, not killed
    assert "body bytes on a no-body response" not in log  # HEAD sent no body


def test_when_one_process_dies_the_others_are_stopped_and_the_start_fails():
    from signalpost.cli import _supervise

    started = time.monotonic()
    status = _supervise(
        [
            [sys.executable, "-c", "import time; time.sleep(60)"],
            [sys.executable, "-c", "import time; time.sleep(0.5); raise SystemExit(3)"],
        ],
        dict(os.environ),
    )
    assert status == 3  # systemd sees the failure and restarts the whole
    assert time.monotonic() - started < 30  # the sleeper was stopped, not waited for


def test_the_process_environment_stays_out_of_request_meta(tmp_path):
    """granian builds each environ on a copy of the process's variables: META drops them."""
    port = free_port()
    env = {**os.environ, "SIGNALPOST_TEST_SECRET": "hunter2", "SECRET_KEY": "s" * 64}
    log = open(tmp_path / "granian.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "granian", "tests.wsgi_meta:application", "--interface",
         "wsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert server.poll() is None, (tmp_path / "granian.log").read_text()
            try:
                status, _, body = fetch(f"http://127.0.0.1:{port}/a/path?q=1")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "granian.log").read_text()
                time.sleep(0.25)
    finally:
        stop(server, timeout=30)
        log.close()

    assert status == 200
    keys = json.loads(body)
    # Why the request class filters: the server hands the variables to every request.
    assert {"SIGNALPOST_TEST_SECRET", "SECRET_KEY"} <= set(keys["server"])
    assert "SIGNALPOST_TEST_SECRET" not in keys["meta"]
    assert "SECRET_KEY" not in keys["meta"] and "PATH" not in keys["meta"]
    assert {"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_HOST"} <= set(keys["meta"])
