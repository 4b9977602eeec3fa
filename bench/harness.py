"""What the benchmarks share: PostgreSQL, the processes they start, and /proc readings.

Imported by ``bench/fanout.py``, ``bench/subscribe.py`` and ``bench/import.py``, which
run as scripts from this folder.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pg_connect(dbname="postgres"):
    import psycopg
    from psycopg.conninfo import make_conninfo

    return psycopg.connect(make_conninfo(PG_URL, dbname=dbname), autocommit=True)


def pg_url_for(dbname):
    return urlsplit(PG_URL)._replace(path=f"/{dbname}").geturl()


@contextmanager
def django_on_throwaway_database(label):
    """Run Django in this process on a new, migrated PostgreSQL database
    ``signalpost_bench_<label>_<pid>``, dropped on the way out (even on an error)."""
    dbname = f"signalpost_bench_{label}_{os.getpid()}"
    with pg_connect() as admin:
        admin.execute(f"CREATE DATABASE {dbname}")
    try:
        os.environ["DATABASE_URL"] = pg_url_for(dbname)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
        os.environ["DEBUG"] = "0"
        sys.path.insert(0, str(REPO_ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield dbname
    finally:
        from django.db import connections

        connections.close_all()
        with pg_connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def production_environment(dbname, *, cache_url, logdir, **extra):
    """The environment of Signalpost in production mode on ``dbname`` for a benchmark:
    emails to ``locmem:``, static files collected into ``logdir``; ``extra`` on top."""
    return {
        **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "SIGNALPOST_MODE"}},
        "DATABASE_URL": pg_url_for(dbname),
        "CACHE_URL": cache_url,
        "EMAIL_URL": "locmem:",
        "SECRET_KEY": "bench-" + "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": "https://news.example.com",
        "STATIC_ROOT": str(Path(logdir) / "static"),
        **extra,
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A process of ours, in its own session, with its output in a log file."""

    def __init__(self, name, argv, *, env, logdir, cwd=REPO_ROOT):
        self.name = name
        self.log_path = Path(logdir) / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout=30.0):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)  # our own session only
                self.process.wait(5)
        self.log.close()

    def tail(self, lines=25):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def run(argv, *, env, what, cwd=REPO_ROOT, timeout=600):
    """Run a command to its end; stop the benchmark with its output if it fails."""
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise SystemExit(
            f"{what} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def proc_cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far, or ``None`` once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid):
    """CPU seconds of ``pid`` and all its descendants so far, the reaped ones included
    (a server that replaces its worker processes loses none of their time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = sum(int(fields[index]) for index in (11, 12, 13, 14)) / CLOCK_TICKS
    return own + sum(tree_cpu_seconds(int(child)) for child in children)


def own_cpu_seconds(*, children=False):
    """CPU seconds of this process, and of its children it has waited for if asked."""
    times = os.times()
    own = times.user + times.system
    if children:
        own += times.children_user + times.children_system
    return own


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O)."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def wait_ready(port, path, *, service, timeout=90.0):
    """Wait until GET ``path`` answers 200 (gunicorn boots Django in each worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise SystemExit(f"{service.name} exited while starting:\n{service.tail()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path, headers={"Host": "127.0.0.1"})
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return
            raise SystemExit(f"{service.name}: GET {path} answered {status}:\n{service.tail()}")
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{service.name} not ready after {timeout:.0f} s:\n{service.tail()}")


def backend_pid():
    """The pid of the PostgreSQL backend serving Django's default connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def backend_cpu_seconds():
    """CPU seconds so far of the PostgreSQL backend serving Django's default connection."""
    return proc_cpu_seconds(backend_pid())


def worker_drain(*, worker_id, show_sql=False):
    """Run the worker loop (``BatchWorker``, what ``manage.py db_worker`` runs) in this
    process until the queue is empty; return (CPU seconds, SQL statements run)."""
    from django.db import connection

    from signalpost.durable.worker import BatchWorker

    worker = BatchWorker(
        worker_id=worker_id,
        queue_names=["default"],
        excluded_queue_names=[],
        backend_name="default",
        interval=0,
        max_batch_size=100,
        exit_when_idle=True,
        max_tasks=None,
    )
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        if show_sql:
            print(f"  SQL {sql[:300]}")
        return execute(sql, params, many, context)

    cpu = time.process_time()
    with connection.execute_wrapper(count):
        worker.run()
    return time.process_time() - cpu, statements


def profile_print(profiler, *, tottime, cumulative):
    """Print ``profiler``'s functions: the ``tottime`` costliest by own time, then the
    ``cumulative`` costliest with what they call."""
    import io
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(tottime)
    stats.sort_stats("cumulative").print_stats(cumulative)
    print(text.getvalue())
