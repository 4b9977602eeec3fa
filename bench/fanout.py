"""Fan-out: one issue to 100,000 subscribers, sent by 2 task workers into an SMTP sink.

Run from the repository root::

    .venv/bin/python bench/fanout.py            # 10,000 and 100,000 subscribers
    .venv/bin/python bench/fanout.py --quick    # 10,000 only, smaller comparisons (~2 min)

The full run lasts as long as Signalpost takes to send 100,000 emails: 16-18 minutes in
all at today's 130-160 emails/s on a shared 2-core machine (~3 minutes of it the rest).

Everything runs on 127.0.0.1, on free ports, and is stopped or dropped at the end:

- **The SMTP sink** (``fanout_support/smtp_sink.py``), in its own process: a small asyncio
  server that accepts, counts and discards every message. All contenders send to it.
- **The physical limit**: ``fanout_support/bare_smtp.py``, a bare ``smtplib`` loop sending
  one pre-rendered Signalpost message (the bytes Django's SMTP backend would send for the
  first recipient) over one connection, ``--bare-count`` times; run before the other
  contenders and again after them, so drift shows. One more column runs two such loops
  at once (two connections, like two workers) to show what the sink takes.
- **Signalpost**: a fresh PostgreSQL database ``signalpost_bench_fanout_<pid>`` (migrated;
  profiles and active subscriptions created with ``INSERT ... generate_series``), 2
  ``manage.py db_worker --no-reload --no-startup-delay --interval=0.2`` processes started
  anew for each size (so each one's peak RSS belongs to that size), production settings
  (``SIGNALPOST_MODE=production``, ``DEBUG=0``, Redis as the cache, ``EMAIL_URL`` at the
  sink, ``SEND_RATE_PER_SECOND=0``, the default ``SEND_BATCH_SIZE``). This process calls
  ``issue_send()`` and polls until ``Issue.status == "sent"``.
- **django-newsletter 1.2.1** in its own virtual environment (found or created under
  ``~/.cache/signalpost-bench/``), its own database ``signalpost_bench_fanout_dn_<pid>``
  and ``fanout_support/dn_fanout`` settings (no ``NEWSLETTER_EMAIL_DELAY`` /
  ``NEWSLETTER_BATCH_SIZE``: no sleeping), sending a prepared Submission with its
  ``submit_newsletter`` command (``fanout_support/dn_driver.py``) to ``--dn-subscribers``
  recipients: it sends one message at a time, opening an SMTP connection for each.

Emails per second, for Signalpost, are headlined end to end: recipients / (the issue's
``sent_at`` minus the moment ``issue_send()`` was called), which includes creating the
deliveries and queueing the batches. The rate between the first and the last delivery's
``sent_at`` is shown too. For django-newsletter the headline is recipients / the time
``submit_newsletter`` took in process; for the bare loop, messages / loop time. The sink's
own count and first-to-last rate are shown for all of them. Peak memory is each worker's
``VmHWM`` read from ``/proc`` just before it is stopped. CPU per email is read from
``/proc`` for the senders, their PostgreSQL backends and the sink; "other processes" is
the rest of the machine's busy time (other people's work on a shared machine).

``--profile DIR`` runs the Signalpost workers under cProfile (slower: not for figures)
and prints their hottest functions. ``--patch FILE`` adds, after each Signalpost column,
the same send (a second issue, same text, same subscribers) by workers that execute FILE
after ``django.setup()`` (``fanout_support/worker.py``): a way to measure a proposed change
side by side without editing Signalpost.
"""

import argparse
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

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
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SUPPORT_DIR = BENCH_DIR / "fanout_support"
PROJECT_PYTHON = Path(sys.executable)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
CACHE_ROOT = Path.home() / ".cache" / "signalpost-bench"
DN_VENV_CANDIDATES = [CACHE_ROOT / "django-newsletter-venv", CACHE_ROOT / "fanout-dn-venv"]
DN_REQUIREMENTS = ["django-newsletter==1.2.1", "Django>=5.2,<5.3", "psycopg[binary]"]
OTHER_BENCHMARKS = "bench/(subscribe|durable|signals).py"

SUBJECT = "Fanout Weekly #42: queues, caches and the cost of a round trip"
SITE_URL = "https://news.fanout.test"


def issue_body():
    """A newsletter of ordinary size (~3 KB of Markdown): headings, paragraphs, lists, links."""
    sections = []
    topics = ["Queues", "Caches", "Round trips", "Indexes", "Backpressure"]
    for number, topic in enumerate(topics, start=1):
        sections.append(
            f"## {number}. {topic}\n\n"
            f"This week we look at **{topic.lower()}** again: what they cost, when they pay "
            "for themselves and how to tell the two apart before production does it for you. "
            f"Read [the long version](https://example.org/{topic.lower().replace(' ', '-')}) "
            "if you have ten minutes.\n\n"
            "- measure before you change anything;\n"
            "- change one thing at a time;\n"
            "- keep the numbers, and the command that made them.\n\n"
            "> A benchmark that cannot be rerun is an anecdote.\n"
        )
    return "Hello and welcome back.\n\n" + "\n".join(sections) + "\nSee you next week.\n"


# -- processes -----------------------------------------------------------------------------


def last_json_line(text):
    return json.loads(text.strip().splitlines()[-1])


def proc_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def other_benchmarks():
    result = subprocess.run(
        ["pgrep", "-af", OTHER_BENCHMARKS], capture_output=True, text=True, check=False
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


# -- PostgreSQL ----------------------------------------------------------------------------


def create_database(name):
    with pg_connect() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name):
    try:
        with pg_connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as error:
        print(f"could not drop {name}: {error}", file=sys.stderr)


class BackendMeter:
    """CPU time of the PostgreSQL backends serving one database, except our own."""

    def __init__(self, dbname, exclude):
        self.dbname = dbname
        self.exclude = set(exclude)
        self.start = {}
        self.last = {}

    def pids(self):
        with pg_connect() as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.dbname],
            ).fetchall()
        return [pid for (pid,) in rows if pid not in self.exclude]

    def begin(self):
        for pid in self.pids():
            self.start[pid] = self.last[pid] = proc_cpu_seconds(pid) or 0.0

    def sample(self):
        for pid in set(self.pids()) | set(self.last):
            value = proc_cpu_seconds(pid)
            if value is not None:
                self.start.setdefault(pid, 0.0)
                self.last[pid] = value

    def seconds(self):
        return sum(self.last[pid] - self.start[pid] for pid in self.last)


# -- the sink ------------------------------------------------------------------------------


class Sink:
    def __init__(self, logdir):
        self.port = free_port()
        self.control_port = free_port()
        self.service = Service(
            "smtp-sink",
            [
                str(PROJECT_PYTHON),
                str(SUPPORT_DIR / "smtp_sink.py"),
                "--port",
                str(self.port),
                "--control-port",
                str(self.control_port),
            ],
            env=os.environ.copy(),
            logdir=logdir,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.command("stats")
                return
            except OSError as error:
                if time.monotonic() > deadline or not self.service.alive():
                    raise SystemExit(
                        f"the SMTP sink did not start:\n{self.service.tail()}"
                    ) from error
                time.sleep(0.1)

    def command(self, word):
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as sock:
            sock.sendall(word.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def reset(self):
        self.command("reset")

    def stats(self):
        return self.command("stats")

    def cpu(self):
        return proc_cpu_seconds(self.service.pid) or 0.0


class Phase:
    """CPU of the sink, of the machine and of this process over one measured phase."""

    def __init__(self, sink):
        self.sink = sink

    def __enter__(self):
        self.sink.reset()
        self.sink_cpu = self.sink.cpu()
        self.machine = machine_busy_seconds()
        self.own = own_cpu_seconds()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.started
        self.sink_cpu = self.sink.cpu() - self.sink_cpu
        self.machine = machine_busy_seconds() - self.machine
        self.own = own_cpu_seconds() - self.own
        self.sink_stats = self.sink.stats()
        return False


def sink_rate(stats):
    if stats["messages"] < 2 or not stats["first_at"]:
        return None
    return (stats["messages"] - 1) / max(1e-9, stats["last_at"] - stats["first_at"])


# -- contenders ----------------------------------------------------------------------------


def run_bare(sink, message_path, count, *, processes=1):
    """The bare smtplib loop, in ``processes`` processes at once (each sends ``count``)."""
    argv = [
        str(PROJECT_PYTHON),
        str(SUPPORT_DIR / "bare_smtp.py"),
        "--port",
        str(sink.port),
        "--message",
        str(message_path),
        "--count",
        str(count),
    ]
    with Phase(sink) as phase:
        children = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(processes)
        ]
        outputs = [child.communicate(timeout=600)[0] for child in children]
    results = [last_json_line(output) for output in outputs]
    sent = sum(result["sent"] for result in results)
    seconds = max(result["seconds"] for result in results)
    sender_cpu = sum(result["cpu"] for result in results)
    return {
        "kind": "bare",
        "recipients": sent,
        "delivered": phase.sink_stats["messages"],
        "rate": sent / seconds,
        "rate_span": None,
        "total": seconds,
        "peak_mb": [result["peak_kb"] / 1024 for result in results],
        "sender_cpu_ms": 1000 * sender_cpu / sent,
        "pg_cpu_ms": None,
        "sink_cpu_ms": 1000 * phase.sink_cpu / sent,
        "sink": phase.sink_stats,
        "sink_rate": sink_rate(phase.sink_stats),
        "other_cores": max(0.0, phase.machine - phase.sink_cpu - sender_cpu - phase.own)
        / phase.wall,
        "busy_cores": phase.machine / phase.wall,
    }


class PauseResume:
    """``--pause-at F``: pause the send once the sink has F of its messages, wait until
    nothing more arrives, resume. Measures the time from the pause to the last message
    that still arrived, and how many did."""

    QUIET_SECONDS = 3.0

    def __init__(self, fraction, sink, issue):
        self.fraction, self.sink, self.issue = fraction, sink, issue
        self.state = "waiting" if fraction else "off"

    def step(self, recipients):
        from signalpost.publishing.services import issue_pause, issue_resume

        if self.state == "waiting":
            stats = self.sink.stats()
            if stats["messages"] >= self.fraction * recipients:
                self.paused_at = time.time()
                issue_pause(issue=self.issue)
                self.at_pause = self.sink.stats()["messages"]
                self.state = "paused"
        elif self.state == "paused":
            stats = self.sink.stats()
            if time.time() - max(stats["last_at"] or 0, self.paused_at) >= self.QUIET_SECONDS:
                self.last_after = max(0.0, (stats["last_at"] or 0) - self.paused_at)
                self.after_pause = stats["messages"] - self.at_pause
                self.at_resume = stats["messages"]
                self.held = time.time() - self.paused_at
                issue_resume(issue=self.issue)
                self.state = "resumed"

    def figures(self):
        return {
            "sent_at_pause": self.at_pause,
            "messages_after_pause": self.after_pause,
            "last_message_after_s": self.last_after,
            "paused_s": self.held,
        }


class Signalpost:
    def __init__(self, args, *, sink, logdir):
        self.args = args
        self.sink = sink
        self.logdir = logdir
        self.db_name = f"signalpost_bench_fanout_{os.getpid()}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "signalpost.settings",
            "SIGNALPOST_MODE": "production",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": SITE_URL,
            "DATABASE_URL": pg_url_for(self.db_name),
            "EMAIL_URL": f"smtp://127.0.0.1:{sink.port}",
            "CACHE_URL": REDIS_URL,
            "SEND_RATE_PER_SECOND": "0",
            "LOG_LEVEL": "WARNING",
            # Every message with its own VERP return path, as production sends with bounces on.
            "BOUNCE_ADDRESS": "bounces@example.com",
        }
        for name in ("SEND_BATCH_SIZE", "SEND_MAX_ATTEMPTS"):
            if name in os.environ:
                self.env[name] = os.environ[name]
        self.newsletters = {}
        self.issues = {}

    def setup(self, sizes):
        """Create and migrate the database, then the profiles, subscriptions and issues."""
        create_database(self.db_name)
        os.environ.update(self.env)
        sys.path.insert(0, str(REPO_ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from signalpost.newsletters.models import Newsletter
        from signalpost.publishing.services import issue_create

        call_command("migrate", verbosity=0)
        largest = max(sizes)
        with connection.cursor() as cursor:
            # Every other profile has a name, as people who fill in the optional field do.
            cursor.execute(
                "INSERT INTO accounts_profile (email, name, attributes, soft_bounce_count, "
                "created_at, updated_at) "
                "SELECT 'reader' || g || '@fanout.test', "
                "CASE WHEN g %% 2 = 1 THEN 'Reader ' || g ELSE '' END, "
                "'{}'::jsonb, 0, now(), now() "
                "FROM generate_series(1, %s) g",
                [largest],
            )
        for size in sizes:
            newsletter = Newsletter.objects.create(
                slug=f"fanout-{size}",
                name=f"Fanout Weekly ({size:,})",
                opt_in=Newsletter.OptIn.SINGLE,
                sender_name="Fanout Weekly",
                sender_email="news@fanout.test",
                reply_to="editor@fanout.test",
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO newsletters_subscription (profile_id, newsletter_id, status, "
                    "source, created_at, subscribed_at, unsubscribe_reason, consent_user_agent) "
                    "SELECT p.id, %s, 'active', 'import', now(), now(), '', '' "
                    "FROM (SELECT id FROM accounts_profile ORDER BY id LIMIT %s) p",
                    [newsletter.pk, size],
                )
                cursor.execute(
                    "INSERT INTO accounts_profile_subscriptions (profile_id, newsletter_id) "
                    "SELECT profile_id, newsletter_id FROM newsletters_subscription "
                    "WHERE newsletter_id = %s",
                    [newsletter.pk],
                )
            self.newsletters[size] = newsletter
            # One issue per run: the patched (--patch) and DKIM runs send one each, same text.
            variants = [
                "",
                *(["patched"] if self.args.patch else []),
                *(["dkim"] if self.args.dkim else []),
            ]
            for variant in variants:
                self.issues[(size, variant)] = issue_create(
                    newsletter=newsletter, subject=SUBJECT, body_markdown=issue_body()
                )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    def prerendered_message(self):
        """The bytes Django's SMTP backend sends for the first recipient of the first issue."""
        import email.policy

        from signalpost.accounts.models import Profile
        from signalpost.publishing.models import Delivery
        from signalpost.publishing.rendering import IssueMessages

        issue = self.issues[min(self.issues)]
        profile = Profile.objects.order_by("id").first()
        delivery = Delivery(pk=1, issue=issue, profile=profile, email=profile.email)
        message = IssueMessages(issue).personalise(delivery, profile=profile).email()
        return message.message(policy=email.policy.SMTP).as_bytes()

    def body_html(self):
        return self.issues[min(self.issues)].body_html

    def dkim_env(self):
        """DKIM settings with a fresh 2048-bit key (in the log directory), for ``--dkim``."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key_file = Path(self.logdir) / "dkim.pem"
        if not key_file.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return {
            "DKIM_DOMAIN": "example.com",
            "DKIM_SELECTOR": "bench",
            "DKIM_PRIVATE_KEY_FILE": str(key_file),
        }

    def start_workers(self, tag, *, patch=None, dkim=False):
        from signalpost.durable.models import WorkerProcess

        workers = []
        for number in range(1, self.args.workers + 1):
            worker_id = f"fanout-{os.getpid()}-{tag}-{number}"
            options = [
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval=0.2",
                f"--worker-id={worker_id}",
            ]
            env = dict(self.env)
            if dkim:
                env.update(self.dkim_env())
            if patch or self.args.profile:
                argv = [str(PROJECT_PYTHON), str(SUPPORT_DIR / "worker.py")]
            else:
                argv = [str(PROJECT_PYTHON), str(REPO_ROOT / "manage.py")]
            if patch:
                env["BENCH_FANOUT_PATCH"] = str(patch)
            if self.args.profile:
                out = Path(self.args.profile) / f"worker-{tag}-{number}.pstats"
                env["BENCH_FANOUT_PROFILE"] = str(out)
            service = Service(
                f"worker-{tag}-{number}", [*argv, *options], env=env, logdir=self.logdir
            )
            service.worker_id = worker_id
            workers.append(service)
        ids = [worker.worker_id for worker in workers]
        deadline = time.monotonic() + 60
        while WorkerProcess.objects.filter(worker_id__in=ids).count() < len(ids):
            for worker in workers:
                if not worker.alive():
                    raise SystemExit(f"worker {worker.name} died:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not register within 60 s")
            time.sleep(0.1)
        time.sleep(0.5)  # past registration, into the polling loop
        return workers

    def send(self, size, *, patch=None, dkim=False):
        """Send an issue to ``size`` subscribers with fresh workers; return the figures."""
        from django.db import connection
        from django.db.models import Count, Max, Min

        from signalpost.publishing.models import Delivery, Issue
        from signalpost.publishing.services import issue_send

        issue = self.issues[(size, "dkim" if dkim else "patched" if patch else "")]
        tag = f"{size}{'-patched' if patch else ''}{'-dkim' if dkim else ''}"
        workers = self.start_workers(tag, patch=patch, dkim=dkim)
        try:
            idle_kb = [proc_status_kb(worker.pid, "VmRSS") for worker in workers]
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                own_backend = cursor.fetchone()[0]
            meter = BackendMeter(self.db_name, exclude=[own_backend])
            meter.begin()
            worker_cpu = [proc_cpu_seconds(worker.pid) for worker in workers]
            deadline = time.monotonic() + self.args.timeout
            pause = PauseResume(self.args.pause_at, self.sink, issue) if not patch else None
            with Phase(self.sink) as phase:
                started = time.time()
                issue_send(issue=issue)
                queued = time.time() - started
                sampled = time.monotonic()
                while True:
                    if pause is not None:
                        pause.step(size)
                    issue.refresh_from_db(fields=["status", "sent_at", "prepared_at"])
                    if issue.status == Issue.Status.SENT:
                        break
                    if self.args.start_only and issue.prepared_at is not None:
                        sent = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT)
                        if sent.exists():
                            break
                    for worker in workers:
                        if not worker.alive():
                            raise SystemExit(f"worker {worker.name} died:\n{worker.tail()}")
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the issue to {size} was not sent in time")
                    if time.monotonic() - sampled > 1.0:
                        meter.sample()
                        sampled = time.monotonic()
                    time.sleep(0.1)
            meter.sample()
            worker_cpu = [
                proc_cpu_seconds(worker.pid) - before
                for worker, before in zip(workers, worker_cpu, strict=True)
            ]
            peak_kb = [proc_status_kb(worker.pid, "VmHWM") for worker in workers]
        finally:
            for worker in workers:
                worker.stop()
        if self.args.start_only:
            # The send stops here: its queued tasks must not hold up the next size's.
            from django_tasks_db.models import DBTaskResult

            DBTaskResult.objects.filter(status="READY").delete()
        counts = dict(
            Delivery.objects.filter(issue=issue)
            .values_list("status")
            .annotate(count=Count("id"))
            .order_by()
        )
        span = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT).aggregate(
            first=Min("sent_at"), last=Max("sent_at")
        )
        delivered = counts.get(Delivery.Status.SENT, 0)
        table = deliveries_table_figures()
        issue.refresh_from_db()
        recipients = issue.recipient_count
        first_after = span["first"].timestamp() - started if delivered else None
        prepared_after = issue.prepared_at.timestamp() - started
        if self.args.start_only:
            if os.environ.get("BENCH_FANOUT_TIMELINE"):
                from django_tasks_db.models import DBTaskResult

                for row in DBTaskResult.objects.exclude(started_at=None).order_by("started_at")[
                    :40
                ]:
                    print(
                        row.task_path.rsplit(".", 1)[1],
                        row.worker_ids,
                        round(row.enqueued_at.timestamp() - started, 2),
                        round(row.started_at.timestamp() - started, 2),
                        row.finished_at and round(row.finished_at.timestamp() - started, 2),
                    )
            return {
                "kind": "start",
                "recipients": recipients,
                "queued": queued,
                "first_after": first_after,
                "prepared_after": prepared_after,
                "delivered": delivered,
                "peak_mb": [kb / 1024 for kb in peak_kb],
            }
        total = issue.sent_at.timestamp() - started
        span_seconds = (span["last"] - span["first"]).total_seconds() if delivered > 1 else None
        pg_cpu = meter.seconds()
        return {
            "kind": "signalpost",
            "recipients": recipients,
            "delivered": delivered,
            "statuses": counts,
            "rate": recipients / total,
            "rate_span": (delivered - 1) / span_seconds if span_seconds else None,
            "total": total,
            "queued": queued,
            "first_after": first_after,
            "prepared_after": prepared_after,
            "idle_mb": [kb / 1024 for kb in idle_kb],
            "peak_mb": [kb / 1024 for kb in peak_kb],
            "sender_cpu_ms": 1000 * sum(worker_cpu) / max(1, delivered),
            "pg_cpu_ms": 1000 * pg_cpu / max(1, delivered),
            "sink_cpu_ms": 1000 * phase.sink_cpu / max(1, delivered),
            "sink": phase.sink_stats,
            "sink_rate": sink_rate(phase.sink_stats),
            "other_cores": max(
                0.0, phase.machine - phase.sink_cpu - sum(worker_cpu) - pg_cpu - phase.own
            )
            / phase.wall,
            "busy_cores": phase.machine / phase.wall,
            "batches": math.ceil(recipients / self.batch_size()),
            "pause": pause.figures() if pause is not None and pause.state != "off" else None,
            **table,
        }

    def batch_size(self):
        from django.conf import settings

        return settings.SIGNALPOST_SEND_BATCH_SIZE

    def close(self):
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_database(self.db_name)


def deliveries_table_figures():
    """The deliveries table's updates so far (all, HOT) and its size with its indexes.

    Read after the workers stopped: a backend reports its counters when it ends.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd, pg_total_relation_size(relid) "
            "FROM pg_stat_user_tables WHERE relname = 'publishing_delivery'"
        )
        updated, hot, size = cursor.fetchone()
    return {"deliveries_updated": updated, "deliveries_hot": hot, "deliveries_mb": size / 2**20}


def dn_python():
    """django-newsletter's virtual environment: the one bench/subscribe.py made, or ours."""
    check = "import django, newsletter, psycopg, sorl; print(django.get_version())"
    for venv in DN_VENV_CANDIDATES:
        python = venv / "bin" / "python"
        if python.exists():
            result = subprocess.run(
                [str(python), "-c", check], capture_output=True, text=True, check=False
            )
            if result.returncode == 0:
                return python
    venv = DN_VENV_CANDIDATES[-1]
    print(f"creating {venv} with {' '.join(DN_REQUIREMENTS)} (once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    run([base, "-m", "venv", "--clear", str(venv)], env=os.environ, what="venv")
    python = venv / "bin" / "python"
    run(
        [str(python), "-m", "pip", "install", "-q", *DN_REQUIREMENTS, "sorl-thumbnail"],
        env=os.environ,
        what="pip install",
    )
    return python


class DjangoNewsletter:
    def __init__(self, args, *, sink):
        self.args = args
        self.sink = sink
        self.db_name = f"signalpost_bench_fanout_dn_{os.getpid()}"
        self.python = dn_python()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "dn_fanout.settings",
            "PYTHONPATH": str(SUPPORT_DIR),
            "SECRET_KEY": secrets.token_urlsafe(48),
            "BENCH_DN_DATABASE": self.db_name,
            "BENCH_SMTP_PORT": str(sink.port),
        }
        parts = urlsplit(PG_URL)
        self.env.update(
            BENCH_PG_HOST=parts.hostname or "127.0.0.1",
            BENCH_PG_PORT=str(parts.port or 5432),
            BENCH_PG_USER=parts.username or "postgres",
            BENCH_PG_PASSWORD=parts.password or "",
        )
        self.versions = run(
            [
                str(self.python),
                "-c",
                "import django; from importlib.metadata import version; "
                "print(version('django-newsletter'), django.get_version())",
            ],
            env=self.env,
            what="django-newsletter version",
        ).split()

    def setup(self, subscribers, body_html_path):
        create_database(self.db_name)
        run(
            [str(self.python), "-m", "django", "migrate", "--verbosity=0"],
            env=self.env,
            what="django-newsletter migrate",
        )
        driver = str(SUPPORT_DIR / "dn_driver.py")
        out = run(
            [
                str(self.python),
                driver,
                "setup",
                f"--subscribers={subscribers}",
                f"--subject={SUBJECT}",
                f"--body-html={body_html_path}",
            ],
            env=self.env,
            what="django-newsletter setup",
        )
        self.recipients = last_json_line(out)["subscriptions"]

    def send(self):
        argv = [str(self.python), str(SUPPORT_DIR / "dn_driver.py"), "submit"]
        meter = BackendMeter(self.db_name, exclude=[])
        with Phase(self.sink) as phase:
            child = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, text=True)
            pid = child.pid
            cpu = 0.0
            while child.poll() is None:
                cpu = proc_cpu_seconds(pid) or cpu
                meter.sample()  # its backend goes with it: the last half second is lost
                time.sleep(0.5)
            output = child.stdout.read()
            child.stdout.close()
        if child.returncode != 0:
            raise SystemExit(f"submit_newsletter failed ({child.returncode}):\n{output}")
        result = last_json_line(output)
        delivered = phase.sink_stats["messages"]
        backends = meter.seconds()
        return {
            "kind": "newsletter",
            "recipients": self.recipients,
            "delivered": delivered,
            "submission_sent": result["sent"],
            "rate": self.recipients / result["seconds"],
            "rate_span": None,
            "total": result["seconds"],
            "peak_mb": [result["peak_kb"] / 1024],
            "sender_cpu_ms": 1000 * result["cpu"] / max(1, delivered),
            "pg_cpu_ms": 1000 * backends / max(1, delivered),
            "sink_cpu_ms": 1000 * phase.sink_cpu / max(1, delivered),
            "sink": phase.sink_stats,
            "sink_rate": sink_rate(phase.sink_stats),
            "other_cores": max(
                0.0, phase.machine - phase.sink_cpu - max(cpu, result["cpu"]) - backends - phase.own
            )
            / phase.wall,
            "busy_cores": phase.machine / phase.wall,
        }

    def close(self):
        drop_database(self.db_name)


# -- report --------------------------------------------------------------------------------


def fmt(value, pattern="{:,.0f}"):
    return "n/a" if value is None else pattern.format(value)


def report(args, columns, notes):
    print()
    header = "| | " + " | ".join(label for label, _ in columns) + " |"
    print(header)
    print("|---|" + "---:|" * len(columns))

    def row(label, cell):
        print(f"| {label} | " + " | ".join(cell(result) for _, result in columns) + " |")

    row("recipients (messages sent)", lambda r: fmt(r["recipients"]))
    row("**emails/s** (headline)", lambda r: "**" + fmt(r["rate"]) + "**")
    row("emails/s, first to last `sent_at`", lambda r: fmt(r["rate_span"]))
    row("emails/s, first to last at the sink", lambda r: fmt(r["sink_rate"]))
    row("total time, s", lambda r: fmt(r["total"], "{:.1f}"))
    row(
        "&nbsp;&nbsp;`issue_send()` (the request), s",
        lambda r: fmt(r.get("queued"), "{:.2f}"),
    )
    row("&nbsp;&nbsp;first email after, s", lambda r: fmt(r.get("first_after"), "{:.2f}"))
    row(
        "&nbsp;&nbsp;every delivery created after, s",
        lambda r: fmt(r.get("prepared_after"), "{:.2f}"),
    )
    row(
        "peak RSS per sending process, MB",
        lambda r: " / ".join(f"{mb:.0f}" for mb in r["peak_mb"]),
    )
    row(
        "RSS per worker when idle, before the send, MB",
        lambda r: " / ".join(f"{mb:.0f}" for mb in r["idle_mb"]) if "idle_mb" in r else "n/a",
    )
    row("messages counted by the sink", lambda r: fmt(r["sink"]["messages"]))
    row(
        "average message size, KB",
        lambda r: fmt(r["sink"]["bytes"] / max(1, r["sink"]["messages"]) / 1024, "{:.1f}"),
    )
    row("SMTP connections opened", lambda r: fmt(r["sink"]["connections"]))
    row("sender CPU per email, ms", lambda r: fmt(r["sender_cpu_ms"], "{:.2f}"))
    row("PostgreSQL backends CPU per email, ms", lambda r: fmt(r["pg_cpu_ms"], "{:.2f}"))
    row("sink CPU per email, ms", lambda r: fmt(r["sink_cpu_ms"], "{:.2f}"))
    row("deliveries: rows updated (all sends so far)", lambda r: fmt(r.get("deliveries_updated")))
    row("&nbsp;&nbsp;of which HOT", lambda r: fmt(r.get("deliveries_hot")))
    row(
        "deliveries table with its indexes, MB",
        lambda r: fmt(r.get("deliveries_mb"), "{:.0f}"),
    )
    row("machine busy, cores (of 2)", lambda r: fmt(r["busy_cores"], "{:.2f}"))
    row("&nbsp;&nbsp;other processes, cores", lambda r: fmt(r["other_cores"], "{:.2f}"))
    print()
    for note in notes:
        print(note)


def goals(results):
    bare = [result["rate"] for key, result in results.items() if key.startswith("bare1")]
    bare_limit = sum(bare) / len(bare)
    newsletter = results.get("newsletter")
    lines = []
    for key, result in results.items():
        if not key.startswith(("signalpost", "dkim", "patched")):
            continue
        rate = result["rate"]
        peak = max(result["peak_mb"])
        verdict = [
            f"{rate:,.0f} emails/s {'>=' if rate >= 1000 else '<'} 1,000 "
            f"({'met' if rate >= 1000 else 'missed'})",
            f"{rate / bare_limit:.0%} of bare smtplib's {bare_limit:,.0f}/s "
            f"({'met' if rate >= 0.5 * bare_limit else 'missed'})",
        ]
        if newsletter:
            ratio = rate / newsletter["rate"]
            verdict.append(
                f"{ratio:.1f}x django-newsletter's {newsletter['rate']:,.0f}/s "
                f"({'met' if ratio >= 10 else 'missed'})"
            )
        verdict.append(
            f"peak worker RSS {peak:.0f} MB ({'met' if peak < 150 else 'missed'}, goal < 150)"
        )
        verdict += start_goals(result)
        lines.append(f"{result['label']}: " + "; ".join(verdict))
    return lines


def start_goals(result):
    """Issue #24's goals for starting a send: the request under 1 s, the first email
    within 2 s of the click."""
    request, first = result["queued"], result["first_after"]
    return [
        f"the request took {request:.2f} s ({'met' if request < 1 else 'missed'}, goal < 1 s)",
        f"first email {fmt(first, '{:.2f}')} s after the click "
        f"({'met' if first is not None and first < 2 else 'missed'}, goal < 2 s)",
    ]


def start_report(results):
    print()
    print("| send start | request, s | first email after, s | every delivery created after, s |")
    print("|---|---:|---:|---:|")
    for result in results.values():
        print(
            f"| {result['label']} | {result['queued']:.2f} "
            f"| {fmt(result['first_after'], '{:.2f}')} | {result['prepared_after']:.1f} |"
        )
    print()
    for result in results.values():
        print(f"{result['label']}: " + "; ".join(start_goals(result)))


def print_profiles(directory):
    import pstats

    files = sorted(Path(directory).glob("*.pstats"))
    if not files:
        return
    stats = pstats.Stats(*(str(path) for path in files))
    print(f"\ncProfile of the workers ({len(files)} files in {directory}), by own time:")
    stats.sort_stats("tottime").print_stats(30)
    print("by cumulative time:")
    stats.sort_stats("cumulative").print_stats(45)


# -- main ----------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 only; smaller comparisons")
    parser.add_argument("--sizes", help="subscriber counts, comma-separated (10000,100000)")
    parser.add_argument(
        "--dn-subscribers", type=int, help="django-newsletter's recipients (5000; quick 1000)"
    )
    parser.add_argument(
        "--bare-count", type=int, help="messages per bare smtplib loop (10000; quick 5000)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-newsletter", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per send at most")
    parser.add_argument("--profile", metavar="DIR", help="run the workers under cProfile")
    parser.add_argument(
        "--patch",
        metavar="FILE",
        help="also send each size with workers that run FILE after django.setup() "
        "(fanout_support/worker.py): to measure a proposed change without editing Signalpost",
    )
    parser.add_argument(
        "--no-dkim",
        dest="dkim",
        action="store_false",
        help="skip the column that sends each size again with DKIM signing on",
    )
    parser.add_argument(
        "--start-only",
        action="store_true",
        help="measure only how a send starts (the request, the first email, every delivery "
        "created), then stop it: no comparisons, no full send",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--pause-at",
        type=float,
        default=None,
        metavar="F",
        help="pause each Signalpost send once F (0-1) of it reached the sink, resume when "
        "nothing has arrived for 3 s; report the time from pause to the last message",
    )
    args = parser.parse_args()
    if args.sizes:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    else:
        args.sizes = [10_000] if args.quick else [10_000, 100_000]
    if args.dn_subscribers is None:
        args.dn_subscribers = 1_000 if args.quick else 5_000
    if args.bare_count is None:
        args.bare_count = 5_000 if args.quick else 10_000
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if args.patch:
        args.patch = str(Path(args.patch).resolve())
    return args


def main():
    args = parse_args()
    busy = other_benchmarks()
    if busy:
        print("warning: other benchmarks are running:\n  " + "\n  ".join(busy), flush=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    began = time.monotonic()
    logdir = tempfile.mkdtemp(prefix="signalpost-fanout-")
    sink = signalpost = newsletter = None
    results = {}
    try:
        sink = Sink(logdir)
        signalpost = Signalpost(args, sink=sink, logdir=logdir)
        print(f"setting up {signalpost.db_name}: {max(args.sizes):,} profiles", flush=True)
        signalpost.setup(args.sizes)
        message_path = Path(logdir) / "message.eml"
        message_path.write_bytes(signalpost.prerendered_message())
        body_path = Path(logdir) / "body.html"
        body_path.write_text(signalpost.body_html(), encoding="utf-8")
        if not args.skip_newsletter and not args.start_only:
            newsletter = DjangoNewsletter(args, sink=sink)
            print(f"setting up {newsletter.db_name}: {args.dn_subscribers:,} subscriptions")
            newsletter.setup(args.dn_subscribers, body_path)
        print(f"setup took {time.monotonic() - began:.0f} s", flush=True)

        def step(key, label, function, *fargs, **fkwargs):
            print(f"{label} ...", end=" ", flush=True)
            result = function(*fargs, **fkwargs)
            result["label"] = label
            results[key] = result
            print(f"{result['rate']:,.0f} emails/s in {result['total']:.1f} s", flush=True)

        if args.start_only:
            for size in args.sizes:
                label = f"Signalpost, {size:,}"
                print(f"{label} ...", end=" ", flush=True)
                result = signalpost.send(size)
                result["label"] = label
                results[f"signalpost-{size}"] = result
                print(f"first email after {fmt(result['first_after'], '{:.2f}')} s", flush=True)
            return finish_start_only(results, began)
        count = args.bare_count
        step("bare1-before", "bare smtplib, 1 connection", run_bare, sink, message_path, count)
        step(
            "bare2",
            "bare smtplib, 2 processes",
            run_bare,
            sink,
            message_path,
            count // 2,
            processes=2,
        )

        def send_signalpost(size):
            step(f"signalpost-{size}", f"Signalpost, {size:,}", signalpost.send, size)
            if args.dkim:
                label = f"Signalpost + DKIM, {size:,}"
                step(f"dkim-{size}", label, signalpost.send, size, dkim=True)
            if args.patch:
                label = f"Signalpost + {Path(args.patch).stem}, {size:,}"
                step(f"patched-{size}", label, signalpost.send, size, patch=args.patch)

        sizes = list(args.sizes)
        send_signalpost(sizes[0])
        if newsletter:
            step(
                "newsletter",
                f"django-newsletter, {args.dn_subscribers:,}",
                newsletter.send,
            )
        for size in sizes[1:]:
            send_signalpost(size)
        again = "bare smtplib, 1 connection, again"
        step("bare1-after", again, run_bare, sink, message_path, count)
    finally:
        if signalpost:
            signalpost.close()
        if newsletter:
            newsletter.close()
        if sink:
            sink.service.stop()
        if not args.keep_logs and not args.profile:
            for path in Path(logdir).iterdir():
                path.unlink()
            os.rmdir(logdir)
        else:
            print(f"logs kept in {logdir}")

    import django

    order = ["bare1-before", "bare2"]
    for size in args.sizes:
        order += [f"signalpost-{size}", f"dkim-{size}", f"patched-{size}"]
    order += ["newsletter", "bare1-after"]
    columns = [(results[key]["label"], results[key]) for key in order if key in results]
    notes = []
    for result in results.values():
        if result["delivered"] != result["recipients"]:
            notes.append(
                f"**check failed**: {result['label']}: {result['delivered']} delivered "
                f"of {result['recipients']} ({result.get('statuses')})"
            )
        if result["sink"]["messages"] != result["recipients"]:
            notes.append(
                f"**check failed**: {result['label']}: the sink counted "
                f"{result['sink']['messages']} messages, expected {result['recipients']}"
            )
    for size in args.sizes:
        plain, signed = results.get(f"signalpost-{size}"), results.get(f"dkim-{size}")
        if plain and signed:
            notes.append(
                f"DKIM at {size:,}: sender CPU {signed['sender_cpu_ms']:.2f} ms per email signed "
                f"vs {plain['sender_cpu_ms']:.2f} unsigned (+"
                f"{signed['sender_cpu_ms'] - plain['sender_cpu_ms']:.2f} ms); "
                f"{signed['rate'] / plain['rate']:.0%} of the unsigned rate."
            )
    if not any(note.startswith("**check failed") for note in notes):
        notes.append("Checks passed: every recipient delivered once, and counted once by the sink.")
    for result in results.values():
        if result.get("pause"):
            figures = result["pause"]
            notes.append(
                f"{result['label']}: paused at {figures['sent_at_pause']:,} messages; "
                f"{figures['messages_after_pause']:,} more arrived, the last "
                f"{figures['last_message_after_s'] * 1000:,.0f} ms after the pause; resumed "
                f"after {figures['paused_s']:.1f} s (the rate above includes the pause)."
            )
    if not [note for note in notes if note.startswith("**check failed")]:
        notes.insert(
            0, "Checks passed: every recipient delivered once, and counted once by the sink."
        )
    if newsletter:
        notes.append(
            f"django-newsletter {newsletter.versions[0]} on Django {newsletter.versions[1]}; "
            f"Signalpost on Django {django.get_version()}, "
            f"SEND_BATCH_SIZE={signalpost.batch_size()}, {args.workers} workers."
        )
    report(args, columns, notes)
    print()
    for line in goals(results):
        print(line)
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; "
        f"whole run {time.monotonic() - began:.0f} s"
    )
    if args.profile:
        print_profiles(args.profile)


def finish_start_only(results, began):
    start_report(results)
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; "
        f"whole run {time.monotonic() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
