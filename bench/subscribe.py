"""Subscribe under load: Signalpost's ``POST /subscribe/`` (double opt-in) against
django-newsletter's subscribe form, each behind the same web server (granian with 2
processes x 2 threads, the command line ``signalpost serve`` runs, by default; or
``--server gunicorn``: 2 sync worker processes), on the same PostgreSQL server and the
same SMTP sink, with 32 concurrent clients.

Run from the repository root::

    .venv/bin/python bench/subscribe.py            # 2 rounds of 15 s per column (~3 min)
    .venv/bin/python bench/subscribe.py --quick    # 1 round of 5 s per column (~1 min)

What runs (everything on 127.0.0.1, on free ports):

- one SMTP sink (``subscribe_support/smtp_sink.py``, aiosmtpd): accepts and discards
  every message, counting them per recipient domain;
- Signalpost: its web server from the project's ``.venv`` with
  ``SIGNALPOST_MODE=production``, ``DEBUG=0``, a fresh PostgreSQL database
  (``signalpost_bench_sub_<pid>``, migrated, one public double opt-in newsletter),
  Redis for the rate limits, ``EMAIL_URL`` at the sink, and the per-IP subscribe limit
  off (``SUBSCRIBE_RATE_PER_IP=0``: every client is 127.0.0.1); the per-address limit
  stays on and every POST uses a new address;
- django-newsletter (from PyPI, in its own virtual environment under
  ``~/.cache/signalpost-bench/``, created on first use, with the newest Django it
  supports, and the same server's version): the same server serving
  ``subscribe_support/dn_site``, a minimal project with Signalpost's middleware,
  persistent connections and its own fresh database (``signalpost_bench_sub_dn_<pid>``);
  its subscribe view sends the activation email to the sink inside the request, which
  is how it works;
- the load generator: wrk (Debian's ``wrk``, C, one thread, 32 connections,
  ``subscribe_support/wrk_post.lua``) when it is installed, which leaves the servers
  nearly all of the 2 cores; otherwise (or with ``--load-generator python``) this
  process: asyncio and raw HTTP/1.1 over
  ``asyncio.open_connection`` (keep-alive when the server offers it, as granian does;
  gunicorn's sync workers close every connection, so each request opens one).
  Each of the 32 clients GETs the form once (CSRF cookie and token), then POSTs it with
  a new address each time until the phase ends. Requests that complete in the measured
  window, after a warm-up, count; latency is from connect to the last byte of the answer.
  A POST succeeds when Signalpost answers 200 (the "check your inbox" page) or
  django-newsletter answers 302 to its "email sent" page (the redirect is not
  followed); anything else is an error, counted apart and left out of the rate and the
  latencies.

Four columns (``--variants`` picks some): ``signalpost``, the web server alone (no task
worker runs, so the confirmation emails wait in the queue); ``signalpost+worker``, the
same server while one ``manage.py db_worker`` sends the queued confirmation emails to
the sink on the same 2 cores (started before the phase, stopped after it; its own
throughput is not measured); ``signalpost-flush``, a second Signalpost server on its own
database with ``SUBSCRIBE_ASYNC_COMMIT=0``, whose subscribe commits wait for the disk
like every other commit; ``newsletter``, django-newsletter. The columns take turns
(in order, then in reverse order in the next round), and every figure comes from this
one invocation. Afterwards the script checks the rows each server wrote against the
POSTs that succeeded, counts the SQL statements of one subscribe POST in process
(``subscribe_support/probe.py``), drops both databases and stops everything it started.
While a window runs it reads ``/proc`` to split the machine's CPU time between the
web server's processes, their PostgreSQL backends, PostgreSQL's shared processes, Redis, the
SMTP sink, the task worker, the load generator and everything else (other people's
processes on a shared machine).
"""

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from harness import (
    PG_URL,
    Service,
    free_port,
    machine_busy_seconds,
    own_cpu_seconds,
    pg_connect,
    pg_url_for,
    proc_cpu_seconds,
    run,
    wait_ready,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.append(str(REPO_ROOT))
from signalpost.cli import web_command  # noqa: E402  (the production server's command line)

SUPPORT_DIR = BENCH_DIR / "subscribe_support"
PROJECT_PYTHON = Path(sys.executable)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signalpost-bench"
DN_VENV = CACHE_ROOT / "django-newsletter-venv"
# django-newsletter 1.2.1 declares Django 4.2 and 5.2; 5.2.19 is the newest 5.2.
# Server software and driver: the versions in Signalpost's own .venv.
DN_REQUIREMENTS = [
    "django-newsletter==1.2.1",
    "Django==5.2.19",
    "sorl-thumbnail==13.4.0",  # django-newsletter needs a thumbnailer installed
    f"gunicorn=={version('gunicorn')}",
    f"granian=={version('granian')}",
    f"psycopg[binary]=={version('psycopg')}",
]

CLIENTS = 32
WORKERS = 2
SLUG = "bench-weekly"
REQUEST_TIMEOUT = 10.0  # seconds; a request taking longer counts as an error
MAX_POSTS_PER_PHASE = 60_000  # a hard cap on top of the time bound
P99_GOAL_MS = 100.0
RATIO_GOAL = 2.0
TOKEN_PATTERN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
WRK = shutil.which("wrk")
WRK_SCRIPT = SUPPORT_DIR / "wrk_post.lua"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s per column")
    parser.add_argument("--duration", type=float, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each phase")
    parser.add_argument("--rounds", type=int, help="rounds (each runs every column once)")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="granian",
        help="both projects' web server (default granian, which `signalpost serve` runs)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated columns to run, of: " + ", ".join(VARIANTS) + " (default: all)",
    )
    parser.add_argument(
        "--smtp-delay-ms",
        type=int,
        default=0,
        help="make the SMTP sink wait this long before accepting each message "
        "(as a remote mail server would); default 0",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="also write cProfile statistics of in-process subscribe POSTs to DIR",
    )
    parser.add_argument(
        "--show-sql", action="store_true", help="print the SQL statements of one POST"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk (C; apt-get install wrk) or this script's asyncio clients; "
        "auto: wrk when installed",
    )
    args = parser.parse_args()
    if args.load_generator == "auto":
        args.load_generator = "wrk" if WRK else "python"
    elif args.load_generator == "wrk" and not WRK:
        parser.error("--load-generator wrk: wrk is not installed (apt-get install wrk)")
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 3.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.variants = [key.strip() for key in args.variants.split(",") if key.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {', '.join(sorted(unknown))}")
    if not 0 <= args.smtp_delay_ms <= 2000:
        parser.error("--smtp-delay-ms: 0 to 2000")
    if not 1 <= args.clients <= 256 or not 1 <= args.duration <= 120 or args.rounds > 5:
        parser.error("keep it bounded: 1-256 clients, 1-120 s per phase, at most 5 rounds")
    return args


# Processes, ports, databases ----------------------------------------------------------------


def ensure_dn_venv():
    """Create django-newsletter's virtual environment, or reuse it when it matches."""
    marker = DN_VENV / "bench-requirements.txt"
    wanted = "\n".join(DN_REQUIREMENTS) + "\n"
    python = DN_VENV / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"creating {DN_VENV} with {' '.join(DN_REQUIREMENTS)} (once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    DN_VENV.parent.mkdir(parents=True, exist_ok=True)
    run([base, "-m", "venv", "--clear", str(DN_VENV)], env=os.environ, cwd=CACHE_ROOT, what="venv")
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            *DN_REQUIREMENTS,
        ],
        env=os.environ,
        cwd=CACHE_ROOT,
        what="pip install",
        timeout=600,
    )
    marker.write_text(wanted)
    return python


SERVERS = {
    "granian": "granian, 2 processes x 2 threads, as `signalpost serve` runs it",
    "gunicorn": f"gunicorn -w {WORKERS} (sync workers)",
}


def server_argv(server, python, app, port):
    """The command line of ``app``'s web server, run by the virtual environment of
    ``python``: the same server and settings for both projects."""
    if server == "granian":
        # Signalpost's own production command line (signalpost/cli.py), unchanged but
        # for the application and the interpreter.
        argv = web_command({"SIGNALPOST_ADDRESS": f"127.0.0.1:{port}"}, app=f"{app}:application")
        return [str(python), *argv[1:]]
    # No control socket: both servers would share its default path in ~/.gunicorn.
    return [
        str(python.parent / "gunicorn"),
        app,
        "-w",
        str(WORKERS),
        "-b",
        f"127.0.0.1:{port}",
        "--no-control-socket",
    ]


class Target:
    """One server under test: how to start it and how to talk to it."""

    def __init__(self, key, label, *, kind, domain, form_path, post_path, db_name):
        self.key = key
        self.kind = kind  # which application: "signalpost" or "newsletter"
        self.label = label
        self.domain = domain
        self.form_path = form_path
        self.post_path = post_path
        self.db_name = db_name
        self.server = None
        self.port = None
        self.env = None
        self.python = None
        self.cwd = None

    def form_data(self, token, email):
        raise NotImplementedError

    def succeeded(self, status, headers):
        raise NotImplementedError


class SignalpostTarget(Target):
    def __init__(self, db_name, *, key="signalpost", domain="sp.bench.test", env_extra=None):
        super().__init__(
            key,
            "Signalpost",
            kind="signalpost",
            domain=domain,
            form_path=f"/subscribe/?newsletter={SLUG}",
            post_path="/subscribe/",
            db_name=db_name,
        )
        self.env_extra = env_extra or {}

    def setup(self, *, server, smtp_port, logdir, services):
        self.python, self.cwd = PROJECT_PYTHON, REPO_ROOT
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
        env.update(
            DATABASE_URL=pg_url_for(self.db_name),
            SECRET_KEY=secrets.token_urlsafe(48),  # 64 characters
            SIGNALPOST_MODE="production",
            DEBUG="0",
            ALLOWED_HOSTS="127.0.0.1",
            EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
            CACHE_URL=REDIS_URL,
            SUBSCRIBE_RATE_PER_IP="0",  # all 32 clients are 127.0.0.1
            SITE_URL="http://127.0.0.1",
            LOG_LEVEL="WARNING",
        )
        env.update(self.env_extra)
        self.env = env
        manage = [str(PROJECT_PYTHON), "manage.py"]
        run([*manage, "migrate", "--no-input", "-v", "0"], env=env, cwd=REPO_ROOT, what="migrate")
        # Production serves the hashed names collectstatic records (WhiteNoise's manifest).
        run(
            [*manage, "collectstatic", "--no-input", "-v", "0"],
            env=env,
            cwd=REPO_ROOT,
            what="collectstatic",
        )
        run(
            [
                *manage,
                "shell",
                "-c",
                "from signalpost.newsletters.models import Newsletter as N; "
                f"N.objects.create(slug='{SLUG}', name='Bench Weekly', "
                "opt_in=N.OptIn.DOUBLE, is_public=True)",
            ],
            env=env,
            cwd=REPO_ROOT,
            what="create newsletter",
        )
        self.port = free_port()
        self.server = Service(
            f"signalpost-{server}",
            server_argv(server, PROJECT_PYTHON, "signalpost.wsgi", self.port),
            env=env,
            cwd=REPO_ROOT,
            logdir=logdir,
        )
        services.append(self.server)
        wait_ready(self.port, self.form_path, service=self.server)

    def form_data(self, token, email):
        return {
            "csrfmiddlewaretoken": token,
            "user_email": email,
            "name": "Bench Reader",
            "newsletter": SLUG,
            "website": "",
        }

    def succeeded(self, status, headers):
        return status == 200

    # For wrk: the status of a success and text its Location header contains.
    wrk_success = (200, "")


class NewsletterTarget(Target):
    def __init__(self, db_name):
        super().__init__(
            "newsletter",
            "django-newsletter",
            kind="newsletter",
            domain="dn.bench.test",
            form_path=f"/newsletter/{SLUG}/subscribe/",
            post_path=f"/newsletter/{SLUG}/subscribe/",
            db_name=db_name,
        )

    def setup(self, *, server, smtp_port, logdir, services):
        self.python, self.cwd = ensure_dn_venv(), SUPPORT_DIR
        pg = urlsplit(PG_URL)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
        env.update(
            DJANGO_SETTINGS_MODULE="dn_site.settings",
            PYTHONPATH=str(SUPPORT_DIR),
            SECRET_KEY=secrets.token_urlsafe(48),
            BENCH_DN_DATABASE=self.db_name,
            BENCH_PG_HOST=pg.hostname or "127.0.0.1",
            BENCH_PG_PORT=str(pg.port or 5432),
            BENCH_PG_USER=pg.username or "postgres",
            BENCH_PG_PASSWORD=pg.password or "",
            BENCH_SMTP_PORT=str(smtp_port),
        )
        self.env = env
        django = [str(self.python), "-W", "ignore", "-m", "django"]
        run([*django, "migrate", "--no-input", "-v", "0"], env=env, cwd=SUPPORT_DIR, what="migrate")
        run(
            [
                *django,
                "shell",
                "-c",
                "from django.contrib.sites.models import Site; "
                "from newsletter.models import Newsletter; "
                "Site.objects.filter(pk=1).update(domain='127.0.0.1', name='bench'); "
                f"Newsletter.objects.create(title='Bench Weekly', slug='{SLUG}', "
                "email='newsletter@localhost', sender='Bench Weekly').site.add(1)",
            ],
            env=env,
            cwd=SUPPORT_DIR,
            what="create newsletter",
        )
        self.port = free_port()
        self.server = Service(
            f"newsletter-{server}",
            server_argv(server, self.python, "dn_site.wsgi", self.port),
            env=env,
            cwd=SUPPORT_DIR,
            logdir=logdir,
        )
        services.append(self.server)
        wait_ready(self.port, self.form_path, service=self.server)

    def form_data(self, token, email):
        return {"csrfmiddlewaretoken": token, "name_field": "Bench Reader", "email_field": email}

    def succeeded(self, status, headers):
        return status == 302 and headers.get("location", "").endswith("/subscribe/email-sent/")

    wrk_success = (302, "/subscribe/email-sent/")


# CPU accounting from /proc ------------------------------------------------------------------


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


POSTGRES_SHARED = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "archiver",
    "stats",
)


def shared_services():
    """PIDs of the PostgreSQL server's own processes and of Redis, which both servers use."""
    postgres, redis = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if command.startswith("postgres:") and any(word in command for word in POSTGRES_SHARED):
            postgres.append(int(entry))
        elif command.startswith("redis-server"):
            redis.append(int(entry))
    return postgres, redis


class CpuMeter:
    """CPU seconds of each group of processes between ``start()`` and ``stop()``."""

    def __init__(self, *, target, pg, sink, worker, emails_sent):
        self.emails_sent = emails_sent  # () -> messages the sink got for this target
        self.target = target
        self.pg = pg
        self.sink = sink
        self.worker = worker

    def groups(self):
        server = self.target.server.pid
        backends = [
            row[0]
            for row in self.pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.target.db_name,)
            )
        ]
        postgres_shared, redis = shared_services()
        groups = {
            "web server": [server, *children_of(server)],
            "postgres backends": backends,
            "postgres, shared processes": postgres_shared,
            "redis": redis,
            "smtp sink": [self.sink.pid],
        }
        if self.worker is not None:
            groups["db_worker"] = [self.worker.pid]
        return groups

    def read(self, groups):
        return {name: {pid: proc_cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}

    def start(self, *, children=False):
        # With wrk, the load generator is a child process, waited for before stop().
        self.children = children
        self.started = time.perf_counter()
        self.before = self.read(self.groups())
        self.machine_before = machine_busy_seconds()
        self.own_before = own_cpu_seconds(children=children)
        self.emails_before = self.emails_sent()

    def stop(self):
        own = own_cpu_seconds(children=self.children) - self.own_before
        emails = self.emails_sent() - self.emails_before
        machine = machine_busy_seconds() - self.machine_before
        after = self.read(self.groups())
        wall = time.perf_counter() - self.started
        used = {}
        for name, pids in after.items():
            total = 0.0
            for pid, seconds in pids.items():
                if seconds is not None:
                    total += seconds - (self.before.get(name, {}).get(pid) or 0.0)
            used[name] = total
        used["load generator"] = own
        used["everything else"] = max(0.0, machine - sum(used.values()))
        return {
            "cores": {name: seconds / wall for name, seconds in used.items()},
            "machine": machine / wall,
            "emails per s": emails / wall,
        }


# The load generator -------------------------------------------------------------------------


class HttpClient:
    """HTTP/1.1 over one connection at a time, reconnecting when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None
        self.cookies = {}

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method, path, body=b""):
        reused = self.writer is not None
        try:
            return await self._exchange(method, path, body)
        except (ConnectionError, asyncio.IncompleteReadError, EmptyAnswer):
            self.close()
            if not reused:
                raise
        # A kept-alive connection the server had closed: once more on a new one.
        return await self._exchange(method, path, body)

    async def _exchange(self, method, path, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "User-Agent: signalpost-bench/1",
            "Accept: text/html",
        ]
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if method == "POST":
            head.append("Content-Type: application/x-www-form-urlencoded")
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise EmptyAnswer
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie_name, _, cookie_value = value.split(";", 1)[0].partition("=")
                self.cookies[cookie_name.strip()] = cookie_value.strip()
            headers[name] = value
        if "content-length" in headers:
            content = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunked()
        else:
            content = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, content

    async def _chunked(self):
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()


class EmptyAnswer(ConnectionError):
    pass


class PhaseResult:
    def __init__(self):
        self.latencies = []  # seconds, successful POSTs completed in the window
        self.errors = Counter()  # in the window
        self.ok_total = 0  # every successful POST, warm-up included (to check rows)
        self.posts_total = 0
        self.setup_errors = Counter()
        # wrk stops with a request open on each connection and never reads its answer:
        # the server may still write up to this many rows (and emails) it did not count.
        self.unanswered_max = 0


async def client_loop(number, target, result, *, tag, window_start, window_end):
    http = HttpClient(target.port)
    try:
        status, _, page = await asyncio.wait_for(
            http.request("GET", target.form_path), REQUEST_TIMEOUT
        )
        token = TOKEN_PATTERN.search(page)
        if status != 200 or token is None or "csrftoken" not in http.cookies:
            result.setup_errors[f"form GET answered {status}"] += 1
            return
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
        result.setup_errors[f"form GET: {type(error).__name__}"] += 1
        return
    token = token.group(1).decode()
    sequence = 0
    try:
        while time.perf_counter() < window_end and result.posts_total < MAX_POSTS_PER_PHASE:
            sequence += 1
            result.posts_total += 1
            email = f"{tag}-{number}-{sequence}@{target.domain}"
            body = urlencode(target.form_data(token, email)).encode()
            started = time.perf_counter()
            error = None
            try:
                status, headers, _ = await asyncio.wait_for(
                    http.request("POST", target.post_path, body), REQUEST_TIMEOUT
                )
                if not target.succeeded(status, headers):
                    error = f"HTTP {status}"
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                http.close()
                error = type(exc).__name__
            finished = time.perf_counter()
            if error is None:
                result.ok_total += 1
            if window_start <= finished <= window_end:
                if error is None:
                    result.latencies.append(finished - started)
                else:
                    result.errors[error] += 1
            if error is not None:
                await asyncio.sleep(0.05)  # no hot loop against a failing server
    finally:
        http.close()


async def run_phase(target, *, clients, warmup, duration, tag, meter):
    result = PhaseResult()
    now = time.perf_counter()
    window_start = now + warmup
    window_end = window_start + duration

    async def measure():
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        meter.start()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        result.cpu = meter.stop()

    tasks = [
        client_loop(
            number, target, result, tag=tag, window_start=window_start, window_end=window_end
        )
        for number in range(clients)
    ]
    await asyncio.wait_for(
        asyncio.gather(measure(), *tasks), warmup + duration + REQUEST_TIMEOUT + 10
    )
    result.window = duration
    return result


def run_phase_wrk(target, *, clients, warmup, duration, tag, meter):
    """The same phase as ``run_phase``, with wrk sending the POSTs.

    One GET of the form gives the CSRF cookie and token that every connection
    then uses (Django accepts a token any number of times). The warm-up and the
    measured window are two wrk runs, back to back; latency is wrk's, from the
    request's first byte on an open connection to the answer's last byte.
    """
    result = PhaseResult()
    http = HttpClient(target.port)

    async def get_form():
        # Closed inside the loop: a server that keeps the connection alive (granian)
        # leaves it open after the answer.
        try:
            return await asyncio.wait_for(http.request("GET", target.form_path), REQUEST_TIMEOUT)
        finally:
            http.close()

    status, _, page = asyncio.run(get_form())
    token = TOKEN_PATTERN.search(page)
    if status != 200 or token is None or "csrftoken" not in http.cookies:
        raise SystemExit(f"{target.label}: form GET answered {status} without a CSRF token")
    marker = "ADDRESS-GOES-HERE"
    body = urlencode(target.form_data(token.group(1).decode(), marker))
    before, after = body.split(marker)
    cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    wanted_status, wanted_location = target.wrk_success
    for part, seconds in (("w", warmup), ("m", duration)):
        if seconds <= 0:
            continue
        argv = [
            WRK,
            "-t1",
            f"-c{clients}",
            f"-d{seconds:g}s",
            f"--timeout={REQUEST_TIMEOUT:g}s",
            "-s",
            str(WRK_SCRIPT),
            f"http://127.0.0.1:{target.port}{target.post_path}",
            "--",
            target.post_path,
            cookie,
            before,
            after,
            f"{tag}{part}",
            target.domain,
            str(wanted_status),
            wanted_location,
        ]
        if part == "m":
            meter.start(children=True)
        output = run(argv, env=os.environ, cwd=BENCH_DIR, what=f"wrk {target.key}")
        result.unanswered_max += clients
        if part == "m":
            result.cpu = meter.stop()
        figures = wrk_figures(output)
        result.ok_total += figures["ok"]
        result.posts_total += figures["ok"] + figures["failed"]
        if part == "m":
            result.latencies = figures["latencies"]
            result.window = figures["duration"]
            if figures["failed"]:
                result.errors["not the success answer"] += figures["failed"]
            result.errors.update(figures["errors"])
    return result


def wrk_figures(output):
    figures = {"ok": 0, "failed": 0, "duration": 0.0, "errors": Counter(), "latencies": []}
    for line in output.splitlines():
        if not line.startswith("wrk-result "):
            continue
        name, *values = line.split()[1:]
        if name in ("ok", "failed"):
            figures[name] = int(values[0])
        elif name == "duration_us":
            figures["duration"] = int(values[0]) / 1e6
        elif name == "errors":
            for kind, count in zip(("connect", "read", "write", "timeout"), values, strict=True):
                if int(count):
                    figures["errors"][kind] = int(count)
        elif name == "latency":
            figures["latencies"].extend([int(values[0]) / 1e6] * int(values[1]))
    if not figures["duration"]:
        raise SystemExit(f"wrk printed no results:\n{output[-2000:]}")
    figures["latencies"].sort()
    return figures


# Orchestration ------------------------------------------------------------------------------


def sink_counts(control_port):
    with socket.create_connection(("127.0.0.1", control_port), timeout=5) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data)


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def summarize(phases):
    latencies = sorted(value for phase in phases for value in phase.latencies)
    window = sum(phase.window for phase in phases)
    errors = Counter()
    for phase in phases:
        errors.update(phase.errors)
        errors.update({f"setup: {k}": v for k, v in phase.setup_errors.items()})
    cores = Counter()
    for phase in phases:
        cores.update(phase.cpu["cores"])
    return {
        "rps": len(latencies) / window,
        "ok": len(latencies),
        "p50": percentile(latencies, 0.50) * 1000,
        "p90": percentile(latencies, 0.90) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": latencies[-1] * 1000 if latencies else float("nan"),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "errors": errors,
        "cores": {name: value / len(phases) for name, value in cores.items()},
        "machine": statistics.fmean(phase.cpu["machine"] for phase in phases),
        "emails per s": statistics.fmean(phase.cpu["emails per s"] for phase in phases),
        "per_round_rps": [len(phase.latencies) / phase.window for phase in phases],
        "e2e_rps": sum(phase.end_to_end["in_time"] for phase in phases) / window,
        "per_round_e2e_rps": [phase.end_to_end["in_time"] / phase.window for phase in phases],
        "e2e_posts": sum(phase.end_to_end["posts"] for phase in phases),
        "e2e_in_time": sum(phase.end_to_end["in_time"] for phase in phases),
    }


def probe(target, *, profile_dir):
    argv = [
        str(target.python),
        "-W",
        "ignore",
        str(SUPPORT_DIR / "probe.py"),
        "--target",
        target.kind,
        "--slug",
        SLUG,
        "--domain",
        f"probe.{target.domain}",
        "--count",
        "30",
    ]
    env = dict(target.env)
    if target.kind == "signalpost":
        env["PYTHONPATH"] = str(REPO_ROOT)
    if profile_dir:
        argv += ["--profile-out", str(Path(profile_dir) / f"profile-{target.key}.txt")]
    return json.loads(
        run(argv, env=env, cwd=target.cwd, what=f"probe {target.key}").splitlines()[-1]
    )


VARIANTS = {
    # key: (label, target, db_worker running during the phase)
    "signalpost": ("Signalpost", "signalpost", False),
    "signalpost+worker": ("Signalpost + db_worker", "signalpost", True),
    "signalpost-flush": ("Signalpost, commits wait for disk", "signalpost-flush", False),
    "newsletter": ("django-newsletter", "newsletter", False),
}


def wait_worker_ready(worker, db_name, timeout=60.0):
    """Wait until ``worker`` has registered its heartbeat row (Django booted, polling)."""
    deadline = time.monotonic() + timeout
    with pg_connect(db_name) as connection:
        while time.monotonic() < deadline:
            if not worker.alive():
                raise SystemExit(f"{worker.name} exited:\n{worker.tail()}")
            row = connection.execute(
                "SELECT 1 FROM durable_workerprocess WHERE pid = %s", (worker.pid,)
            ).fetchone()
            if row:
                return
            time.sleep(0.2)
    raise SystemExit(f"{worker.name} not polling after {timeout:.0f} s:\n{worker.tail()}")


def main():
    args = parse_args()
    tag = f"b{os.getpid()}x{int(time.time()) % 100000}"
    logdir = tempfile.mkdtemp(prefix="signalpost-bench-sub-")
    pid = os.getpid()
    needed = {VARIANTS[key][1] for key in args.variants}
    targets = {}
    if "signalpost" in needed:
        targets["signalpost"] = SignalpostTarget(f"signalpost_bench_sub_{pid}")
    if "signalpost-flush" in needed:
        targets["signalpost-flush"] = SignalpostTarget(
            f"signalpost_bench_sub_flush_{pid}",
            key="signalpost-flush",
            domain="spf.bench.test",
            env_extra={"SUBSCRIBE_ASYNC_COMMIT": "0"},
        )
    if "newsletter" in needed:
        targets["newsletter"] = NewsletterTarget(f"signalpost_bench_sub_dn_{pid}")
        ensure_dn_venv()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    services = []
    created = []
    failed = True
    pg = pg_connect()
    try:
        for target in targets.values():
            pg.execute(f'CREATE DATABASE "{target.db_name}"')
            created.append(target.db_name)
        smtp_port, control_port = free_port(), free_port()
        sink = Service(
            "smtp-sink",
            [
                str(PROJECT_PYTHON),
                str(SUPPORT_DIR / "smtp_sink.py"),
                "--port",
                str(smtp_port),
                "--control-port",
                str(control_port),
                "--delay-ms",
                str(args.smtp_delay_ms),
                "--arrivals-file",
                str(Path(logdir) / "arrivals.txt"),
            ],
            env=os.environ,
            cwd=REPO_ROOT,
            logdir=logdir,
        )
        services.append(sink)
        print("setting up: databases, migrations, servers ...", flush=True)
        for target in targets.values():
            target.setup(server=args.server, smtp_port=smtp_port, logdir=logdir, services=services)
        sink_counts(control_port)  # the sink answers

        print(
            f"{args.clients} clients, {args.rounds} round(s), {args.warmup:g} s warm-up + "
            f"{args.duration:g} s measured per variant per round",
            flush=True,
        )
        phases = {key: [] for key in args.variants}
        emails = {key: 0 for key in args.variants}
        worker_number = 0
        for round_number in range(args.rounds):
            order = args.variants if round_number % 2 == 0 else args.variants[::-1]
            for key in order:
                label, target_key, with_worker = VARIANTS[key]
                target = targets[target_key]
                worker = None
                if with_worker:
                    worker_number += 1
                    worker = Service(
                        f"signalpost-db_worker-{worker_number}",
                        [str(PROJECT_PYTHON), "manage.py", "db_worker", "--no-reload"],
                        env=target.env,
                        cwd=REPO_ROOT,
                        logdir=logdir,
                    )
                    # The worker starts on an empty queue: what earlier phases left
                    # waiting (the web-server-alone column queues without a worker)
                    # is set aside, so the end-to-end figure is this phase's own.
                    backlog_set_aside(target.db_name)
                    services.append(worker)
                    wait_worker_ready(worker, target.db_name)
                before = sink_counts(control_port)["by_domain"].get(target.domain, 0)
                meter = CpuMeter(
                    target=target,
                    pg=pg,
                    sink=sink,
                    worker=worker,
                    emails_sent=lambda domain=target.domain: sink_counts(control_port)[
                        "by_domain"
                    ].get(domain, 0),
                )
                phase_arguments = {
                    "clients": args.clients,
                    "warmup": args.warmup,
                    "duration": args.duration,
                    "tag": f"{tag}r{round_number}{key[-1]}",
                    "meter": meter,
                }
                if args.load_generator == "wrk":
                    result = run_phase_wrk(target, **phase_arguments)
                else:
                    result = asyncio.run(run_phase(target, **phase_arguments))
                window_end = time.time()
                if worker is not None:
                    # A POST at the end of the window has its E2E_DEADLINE too.
                    time.sleep(E2E_DEADLINE)
                    worker.stop()
                result.end_to_end = end_to_end(
                    target,
                    since=window_end - result.window,
                    until=window_end,
                    arrivals=Path(logdir) / "arrivals.txt",
                )
                after = sink_counts(control_port)["by_domain"].get(target.domain, 0)
                emails[key] += after - before
                phases[key].append(result)
                p99 = percentile(sorted(result.latencies), 0.99) * 1000
                print(
                    f"  round {round_number + 1}  {label:<22} "
                    f"{len(result.latencies) / result.window:7.1f} req/s  p99 {p99:7.1f} ms  "
                    f"errors {sum(result.errors.values()) + sum(result.setup_errors.values())}",
                    flush=True,
                )
                if not target.server.alive():
                    raise SystemExit(f"{label} died:\n{target.server.tail()}")

        summaries = {key: summarize(results) for key, results in phases.items()}
        checks = check_rows(targets, phases, emails)
        probes = {key: probe(target, profile_dir=args.profile) for key, target in targets.items()}
        report(args, summaries, checks, probes, emails)
        failed = False
    finally:
        for service in reversed(services):
            service.stop()
        if failed:
            for service in services:
                print(f"--- {service.name} log (last lines) ---\n{service.tail()}", file=sys.stderr)
        for name in created:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.close()
        if args.keep_logs:
            print(f"logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)


E2E_DEADLINE = 10.0  # seconds from the POST to its email at the sink


def backlog_set_aside(db_name):
    """Mark the tasks waiting in ``db_name`` failed: a worker phase starts on an empty queue."""
    with pg_connect(db_name) as connection:
        connection.execute(
            "UPDATE django_tasks_database_dbtaskresult SET status = 'FAILED', "
            "exception_class_path = 'bench: set aside before a worker phase' "
            "WHERE status = 'READY'"
        )


def end_to_end(target, *, since, until, arrivals):
    """Return how many POSTs of the window [since, until] (epoch s) had their email at
    the sink within E2E_DEADLINE: the request's time is its subscribe task's
    enqueued_at (Signalpost) or its subscription's create_date (django-newsletter)."""
    if target.kind == "signalpost":
        sql = (
            "SELECT extract(epoch FROM enqueued_at), lower(args_kwargs->'kwargs'->>'email') "
            "FROM django_tasks_database_dbtaskresult "
            "WHERE task_path = 'signalpost.newsletters.tasks.subscribe_from_form' "
            "AND enqueued_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)"
        )
    else:
        sql = (
            "SELECT extract(epoch FROM create_date), lower(email) "
            "FROM newsletter_subscription "
            "WHERE create_date BETWEEN to_timestamp(%s) AND to_timestamp(%s)"
        )
    with pg_connect(target.db_name) as connection:
        posts = connection.execute(sql, (since, until)).fetchall()
    arrived = {}
    if arrivals.exists():
        for line in arrivals.read_text().splitlines():
            at, _, address = line.partition(" ")
            arrived.setdefault(address, float(at))
    in_time = sum(
        1
        for posted, address in posts
        if address in arrived and arrived[address] - float(posted) <= E2E_DEADLINE
    )
    return {"posts": len(posts), "in_time": in_time}


def check_rows(targets, phases, emails):
    """Compare the rows each server wrote with the POSTs that succeeded."""
    lines = []
    for target_key, target in targets.items():
        keys = [key for key in phases if VARIANTS[key][1] == target_key]
        ok = sum(phase.ok_total for key in keys for phase in phases[key])
        sent = sum(emails[key] for key in keys)
        unanswered_max = sum(phase.unanswered_max for key in keys for phase in phases[key])

        def matches(count, ok=ok, unanswered_max=unanswered_max):
            return ok <= count <= ok + unanswered_max

        with pg_connect(target.db_name) as connection:

            def count(sql, connection=connection):
                return connection.execute(sql).fetchone()[0]

            if target.kind == "signalpost":
                # One statement, one snapshot: a request wrk left unanswered may still
                # be committing. Each POST queues one subscribe_from_form task, which
                # the worker (when one runs) turns into a pending subscription.
                requests, subscriptions, activities = connection.execute(
                    "SELECT (SELECT count(*) FROM django_tasks_database_dbtaskresult "
                    "WHERE task_path = 'signalpost.newsletters.tasks.subscribe_from_form'), "
                    "(SELECT count(*) FROM newsletters_subscription "
                    "WHERE status = 'pending'), (SELECT count(*) FROM activity_activity)"
                ).fetchone()
                tasks = dict(
                    connection.execute(
                        "SELECT status, count(*) FROM django_tasks_database_dbtaskresult "
                        "GROUP BY status"
                    ).fetchall()
                )
                # Failed rows: those this script set aside before a worker phase (the
                # waiting tasks of earlier phases), and those a worker ran and failed.
                set_aside, failed_running = connection.execute(
                    "SELECT count(*) FILTER (WHERE exception_class_path LIKE 'bench:%%'), "
                    "count(*) FILTER (WHERE exception_class_path NOT LIKE 'bench:%%') "
                    "FROM django_tasks_database_dbtaskresult WHERE status = 'FAILED'"
                ).fetchone()
                line = (
                    f"{target_key}: {ok} successful POSTs (warm-ups included), {requests} "
                    f"queued subscribe requests, {subscriptions} "
                    f"pending subscriptions, {activities} activity rows, "
                    f"{sum(tasks.values())} task rows "
                    f"({', '.join(f'{k.lower()} {v}' for k, v in sorted(tasks.items()))}); "
                    f"{sent} confirmation emails reached the sink; failed rows: {set_aside} "
                    f"set aside by this script before a worker phase, {failed_running} failed "
                    "in a worker"
                )
                good = (
                    matches(requests)
                    and subscriptions <= requests
                    and activities == subscriptions
                    and not failed_running
                )
            else:
                subscriptions = count("SELECT count(*) FROM newsletter_subscription")
                line = (
                    f"django-newsletter: {ok} successful POSTs (warm-ups included), "
                    f"{subscriptions} subscriptions, {sent} activation emails reached the sink"
                )
                good = matches(subscriptions) and matches(sent)
        if unanswered_max:
            line += f" (and up to {unanswered_max} POSTs sent but unanswered when wrk stopped)"
        lines.append(("ok: " if good else "MISMATCH: ") + line)
    return lines


def fmt(value, pattern="{:.1f}"):
    return "n/a" if value is None or value != value else pattern.format(value)


def report(args, summaries, checks, probes, emails):
    keys = list(summaries)
    print()
    print(
        f"Subscribe under load: {args.clients} clients, {SERVERS[args.server]}, "
        f"PostgreSQL, {args.rounds} x {args.duration:g} s measured per column, "
        f"load from {'wrk' if args.load_generator == 'wrk' else 'asyncio clients in Python'}"
        + (f", SMTP sink answering after {args.smtp_delay_ms} ms" if args.smtp_delay_ms else "")
    )
    print()
    print("| | " + " | ".join(VARIANTS[key][0] for key in keys) + " |")
    print("|---|" + "---:|" * len(keys))

    def row(label, cell):
        print(f"| {label} | " + " | ".join(cell(key) for key in keys) + " |")

    def probe_of(key):
        return probes[VARIANTS[key][1]]

    row("requests/s", lambda k: f"**{summaries[k]['rps']:.1f}**")
    row(
        "requests/s per round",
        lambda k: " / ".join(f"{v:.1f}" for v in summaries[k]["per_round_rps"]),
    )
    row("latency p50, ms", lambda k: fmt(summaries[k]["p50"]))
    row("latency p90, ms", lambda k: fmt(summaries[k]["p90"]))
    row("latency p99, ms", lambda k: f"**{fmt(summaries[k]['p99'])}**")
    row("latency max, ms", lambda k: fmt(summaries[k]["max"]))
    row("successful POSTs measured", lambda k: str(summaries[k]["ok"]))

    def errors(key):
        counted = summaries[key]["errors"]
        if not counted:
            return "0"
        detail = ", ".join(f"{name} x{count}" for name, count in counted.most_common())
        return f"{sum(counted.values())} ({detail})"

    row("errors", errors)

    def emails_cell(key):
        if VARIANTS[key][1] == "newsletter":
            return f"{emails[key]} (in the request)"
        if VARIANTS[key][2]:
            return f"{emails[key]} (by db_worker)"
        return f"{emails[key]} (no worker)"

    row(
        f"**end to end**: requests/s whose email reached the sink within {E2E_DEADLINE:g} s",
        lambda k: f"**{summaries[k]['e2e_rps']:.1f}**",
    )
    row(
        "POSTs in the windows / their emails in time",
        lambda k: f"{summaries[k]['e2e_posts']} / {summaries[k]['e2e_in_time']}",
    )
    row("emails to the sink during the phases", emails_cell)
    row("emails to the sink per second, in the window", lambda k: fmt(summaries[k]["emails per s"]))
    row("SQL statements per POST", lambda k: fmt(probe_of(k)["statements"], "{:g}"))
    row(
        "one POST in process, no HTTP: wall / CPU, ms",
        lambda k: f"{probe_of(k)['ms']:.1f} / {probe_of(k)['cpu_ms']:.1f}",
    )
    for name in ["web server", "postgres backends", "db_worker"]:
        row(
            f"{name} CPU per successful POST, ms",
            lambda k, name=name: fmt(
                summaries[k]["cores"][name] / summaries[k]["rps"] * 1000
                if summaries[k]["rps"] and name in summaries[k]["cores"]
                else None
            ),
        )
    server_parts = ("web server", "postgres backends", "db_worker")

    def server_cpu_ms(key):
        summary = summaries[key]
        if not summary["rps"]:
            return None
        return sum(summary["cores"].get(name, 0) for name in server_parts) / summary["rps"] * 1000

    row("server CPU per successful POST (the three above), ms", lambda k: fmt(server_cpu_ms(k)))
    row(
        "requests/s that CPU allows on 2 idle cores",
        lambda k: fmt(2000 / server_cpu_ms(k) if server_cpu_ms(k) else None, "{:.0f}"),
    )
    row(
        "db_worker CPU per email sent, ms",
        lambda k: fmt(
            summaries[k]["cores"]["db_worker"] / summaries[k]["emails per s"] * 1000
            if "db_worker" in summaries[k]["cores"] and summaries[k]["emails per s"]
            else None
        ),
    )
    row("CPU busy, whole machine, cores (of 2)", lambda k: f"{summaries[k]['machine']:.2f}")
    for name in [
        "web server",
        "postgres backends",
        "postgres, shared processes",
        "redis",
        "smtp sink",
        "db_worker",
        "load generator",
        "everything else",
    ]:
        row(
            f"&nbsp;&nbsp;{name}, cores",
            lambda k, name=name: fmt(summaries[k]["cores"].get(name), "{:.2f}"),
        )
    print()
    dn = summaries.get("newsletter")
    for key in ("signalpost", "signalpost+worker", "signalpost-flush"):
        if key in summaries and dn:
            sp = summaries[key]
            ratio = sp["rps"] / dn["rps"] if dn["rps"] else float("nan")
            pairs = [
                a / b for a, b in zip(sp["per_round_rps"], dn["per_round_rps"], strict=True) if b
            ]
            print(
                f"requests/s ratio {VARIANTS[key][0]} / django-newsletter: {ratio:.2f}x "
                f"(per round: {', '.join(f'{p:.2f}x' for p in pairs)}); goal >= {RATIO_GOAL:g}x: "
                + ("met" if ratio >= RATIO_GOAL else "missed")
            )
    if "signalpost+worker" in summaries and dn and dn["e2e_rps"]:
        sp = summaries["signalpost+worker"]
        ratio = sp["e2e_rps"] / dn["e2e_rps"]
        pairs = [
            a / b
            for a, b in zip(sp["per_round_e2e_rps"], dn["per_round_e2e_rps"], strict=True)
            if b
        ]
        print(
            f"end to end (emails in time per second) {VARIANTS['signalpost+worker'][0]} / "
            f"django-newsletter: {ratio:.2f}x (per round: {', '.join(f'{p:.2f}x' for p in pairs)})"
            f"; goal >= {RATIO_GOAL:g}x: " + ("met" if ratio >= RATIO_GOAL else "missed")
        )
    if "signalpost" in summaries and "signalpost-flush" in summaries:
        sp, flush = summaries["signalpost"], summaries["signalpost-flush"]
        print(
            "Signalpost / Signalpost whose subscribe commits wait for the disk: "
            f"{sp['rps'] / flush['rps']:.2f}x requests/s, p99 {sp['p99']:.1f} vs "
            f"{flush['p99']:.1f} ms"
        )
    if "signalpost" in summaries and dn and server_cpu_ms("signalpost"):
        print(
            "ratio of the requests/s their server CPU per POST allows on 2 idle cores, "
            "Signalpost / django-newsletter (less sensitive to other people's load): "
            f"{server_cpu_ms('newsletter') / server_cpu_ms('signalpost'):.2f}x"
        )
    for key in ("signalpost", "signalpost+worker", "signalpost-flush"):
        if key in summaries:
            p99 = summaries[key]["p99"]
            print(
                f"{VARIANTS[key][0]} p99 {p99:.1f} ms; goal < {P99_GOAL_MS:g} ms: "
                + ("met" if p99 < P99_GOAL_MS else "missed")
            )
    print()
    for line in checks:
        print(line)
    if args.show_sql:
        for key, result in probes.items():
            print(f"\nSQL statements of one subscribe POST, {key}:")
            for number, statement in enumerate(result["sql"], 1):
                print(f"  {number:2}. {statement}")
    if args.profile:
        print(f"cProfile statistics written to {args.profile}/profile-*.txt and .prof")


if __name__ == "__main__":
    main()
