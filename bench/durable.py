"""Benchmarks of durable receivers: what recording a task costs the sender, and how fast
real ``db_worker`` processes drain the queue, on SQLite and PostgreSQL side by side.

Run from the repository root::

    .venv/bin/python bench/durable.py              # SQLite: a throwaway file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/durable.py
    .venv/bin/python bench/durable.py --quick      # a smaller run

With a PostgreSQL ``DATABASE_URL`` the benchmark runs on SQLite and on PostgreSQL (choose
with ``--databases``); on PostgreSQL it creates its own database (``signalpost_bench_<pid>``),
migrates it and drops it at the end; the database named in the URL is never touched.
Each database is measured in a child process of its own (Django is configured once per
process); the parent prints both columns in one table.

(a) Enqueue cost: one event is ``transaction.atomic()`` around ``Profile.objects.create``
and one ``send()`` of a declared signal with one receiver, either durable (the send
records a task row) or inline (the receiver runs in ``send()``); both receivers do the
same trivial work. Batches of each are interleaved; the difference is the median of the
differences of batches run back to back.

(b) Worker throughput: N tasks are enqueued, then 1 or 2 real ``manage.py db_worker
--batch --no-reload --no-startup-delay --interval=0`` processes drain them and exit. The
rate is N divided by the time from the first task's ``started_at`` to the last task's
``finished_at`` (read from the task rows), so process start-up is left out. Runs with 1
and 2 workers alternate (1-2, 2-1, ...); the ratio is the median of the ratios of runs
made back to back. While the workers run, the parent samples ``/proc`` to tell how busy
the CPUs were and with what (workers, their PostgreSQL backends, everything else), and
before each pair it measures the "CPU ceiling": how much faster 2 CPU-bound processes run
than 1 at that moment, the most any pool of 2 workers could gain on this machine then.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Run as a script, sys.path[0] is bench/: import its modules as bench.* only.
if sys.path and Path(sys.path[0]).resolve() == BENCH_DIR:
    sys.path[0] = str(REPO_ROOT)
elif str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.signals import (  # noqa: E402  (sets DEBUG=0 and DJANGO_SETTINGS_MODULE)
    BenchDatabase,
    median,
    print_table,
    quartiles,
    timed_ns,
)

ENQUEUE_GOAL_MS = 1.0  # enqueueing adds under 1 ms per durable receiver (PostgreSQL)
SCALING_GOAL = 1.6  # 2 workers drain at least 1.6 times as fast as 1
WORKER_TIMEOUT_S = 900
SAMPLE_INTERVAL_S = 0.05
# A pair of drains is "quiet" when other processes used at most this much CPU during both.
QUIET_OTHER_CORES = 0.25
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and tasks")
    parser.add_argument(
        "--databases",
        help="comma-separated: sqlite, postgres (default: sqlite, plus postgres when "
        "DATABASE_URL names a reachable PostgreSQL server)",
    )
    parser.add_argument(
        "--parts",
        default="enqueue,workers",
        help="comma-separated: enqueue (a), workers (b) (default: %(default)s)",
    )
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="also drain the queue once with one worker under cProfile and print where "
        "its time goes",
    )
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args()


def sizes(quick):
    return {
        "quick": quick,
        # (a): interleaved batches of events per variant
        "batch": 10 if quick else 20,
        "repeats": 15 if quick else 100,
        # (b): tasks per drain, and pairs of drains (1 worker and 2 workers, alternating)
        "tasks": 500 if quick else 2000,
        "pairs": 2 if quick else 4,
    }


# Parent: choose the databases, run one child per database, print the table ----------------


def postgres_url():
    url = os.environ.get("DATABASE_URL", "")
    return url if urlsplit(url).scheme.lower() in POSTGRES_SCHEMES else None


def postgres_reachable(url):
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:
        with psycopg.connect(make_conninfo(url, dbname="postgres", connect_timeout=5)):
            return True
    except psycopg.Error as error:
        print(f"note: PostgreSQL at {url} is not reachable: {error}", file=sys.stderr)
        return False


def choose_databases(requested):
    url = postgres_url()
    if requested:
        databases = [name.strip() for name in requested.split(",") if name.strip()]
        unknown = set(databases) - {"sqlite", "postgres"}
        if unknown:
            sys.exit(f"--databases: unknown {', '.join(sorted(unknown))}")
        if "postgres" in databases and not url:
            sys.exit("--databases postgres needs DATABASE_URL=postgres://...")
        return databases
    return ["sqlite", "postgres"] if url and postgres_reachable(url) else ["sqlite"]


def run_children(args, databases):
    results = {}
    for database in databases:
        handle, result_path = tempfile.mkstemp(prefix="signalpost-bench-", suffix=".json")
        os.close(handle)
        env = dict(os.environ)
        if database == "sqlite":
            env.pop("DATABASE_URL", None)
        command = [sys.executable, str(Path(__file__).resolve()), "--child", database]
        command += ["--result", result_path]
        command += ["--parts", args.parts]
        command += ["--quick"] * args.quick + ["--profile-worker"] * args.profile_worker
        try:
            subprocess.run(command, env=env, check=True)
            results[database] = json.loads(Path(result_path).read_text())
        finally:
            os.unlink(result_path)
    return results


# Child: one database ------------------------------------------------------------------------


def describe_database():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            settings = {}
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
                cursor.execute(f"SHOW {name}")
                settings[name] = cursor.fetchone()[0]
            return {
                "name": f"PostgreSQL {settings['server_version'].split()[0]}",
                "settings": settings,
            }
        cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
        return {
            "name": f"SQLite {version}",
            "settings": {"journal_mode": journal, "synchronous": synchronous},
        }


def event_batch(signal, emails, *, extra_row=False):
    """Send ``signal`` once per address, each in a transaction that also creates a row
    (two rows with ``extra_row``: the yardstick of one more ORM INSERT)."""
    from django.db import transaction

    from signalpost.accounts.models import Profile

    for email in emails:
        with transaction.atomic():
            profile = Profile.objects.create(email=email)
            if extra_row:
                Profile.objects.create(email=f"extra-{email}")
            signal.send(sender=Profile, profile=profile, user_email=email, source="form")


def bench_enqueue(*, batch, repeats):
    """(a) One event with a durable receiver against the same with an inline receiver, and
    against the inline one plus one more row INSERT by the ORM (a yardstick)."""
    import gc

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_tasks_db.models import DBTaskResult

    from bench.durable_receivers import bench_durable_event, bench_inline_event

    variants = {
        "inline": (bench_inline_event, False),
        "durable": (bench_durable_event, False),
        "inline+insert": (bench_inline_event, True),
    }
    counter = iter(range(10**9))

    def run(name, n):
        signal, extra_row = variants[name]
        emails = [f"bench-{next(counter)}@example.com" for _ in range(n)]
        event_batch(signal, emails, extra_row=extra_row)

    for name in variants:
        run(name, 20)
    statements = {}
    for name in variants:
        with CaptureQueriesContext(connection) as captured:
            run(name, 1)
        statements[name] = len(captured.captured_queries)

    gc.collect()
    per_event = {name: [] for name in variants}
    diffs = {"durable": [], "inline+insert": []}
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        this_repeat = {}
        for name in order:
            elapsed = timed_ns(run, name, batch)
            this_repeat[name] = elapsed / batch
            per_event[name].append(elapsed / batch)
        for name, values in diffs.items():
            values.append(this_repeat[name] - this_repeat["inline"])

    expected = 20 + 1 + batch * repeats
    recorded = DBTaskResult.objects.count()
    if recorded != expected:
        raise AssertionError(f"{recorded} task rows recorded for {expected} durable events")
    DBTaskResult.objects.all().delete()
    return {
        "per_event_us": {name: median(values) / 1000 for name, values in per_event.items()},
        "diff_us": median(diffs["durable"]) / 1000,
        "diff_iqr_us": [value / 1000 for value in quartiles(diffs["durable"])],
        "insert_diff_us": median(diffs["inline+insert"]) / 1000,
        "insert_diff_iqr_us": [value / 1000 for value in quartiles(diffs["inline+insert"])],
        "statements": statements,
    }


class CpuSampler:
    """Samples /proc: CPU time of the whole machine, of given processes, and of the
    PostgreSQL backends serving one database. Linux only; elsewhere it records nothing."""

    def __init__(self, *, worker_pids, pg_database):
        self.enabled = Path("/proc/stat").exists()
        self.ticks = os.sysconf("SC_CLK_TCK") if self.enabled else 100
        self.worker_pids = set(worker_pids)
        self.pg_marker = f" {pg_database} " if pg_database else None
        self.pg_pids = set()
        self.not_pg = set()
        self.last_cpu = {}  # pid -> last seen utime + stime; kept after the process exits
        self.samples = []

    @staticmethod
    def read(path):
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError:
            return None

    def process_cpu(self, pid):
        data = self.read(f"/proc/{pid}/stat")
        if data is None:
            return None
        fields = data[data.rfind(b")") + 2 :].split()
        return int(fields[11]) + int(fields[12])

    def find_pg_backends(self):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in self.pg_pids or pid in self.not_pg:
                continue
            cmdline = self.read(f"/proc/{pid}/cmdline") or b""
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            if text.startswith("postgres: ") and self.pg_marker in text:
                self.pg_pids.add(pid)
            else:
                self.not_pg.add(pid)

    def sample(self):
        if not self.enabled:
            return
        now = time.time()
        fields = [int(value) for value in self.read("/proc/stat").split(b"\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
        if self.pg_marker:
            self.find_pg_backends()
        for pid in self.worker_pids | self.pg_pids:
            cpu = self.process_cpu(pid)
            if cpu is not None:
                self.last_cpu[pid] = cpu
        workers = sum(self.last_cpu.get(pid, 0) for pid in self.worker_pids)
        postgres = sum(self.last_cpu.get(pid, 0) for pid in self.pg_pids)
        self.samples.append((now, busy, workers, postgres))

    def cores_between(self, start, end):
        """Average cores busy in [start, end]: machine, workers, PG backends, the rest."""
        if len(self.samples) < 2:
            return None
        before = max((s for s in self.samples if s[0] <= start), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= end), default=self.samples[-1])
        seconds = after[0] - before[0]
        if seconds <= 0:
            return None
        machine, workers, postgres = (
            (after[i] - before[i]) / self.ticks / seconds for i in (1, 2, 3)
        )
        return {
            "machine": machine,
            "workers": workers,
            "postgres": postgres,
            "other": max(0.0, machine - workers - postgres),
        }


def pg_counters():
    """Committed transactions of this database, and WAL syncs of the whole server."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        commits = cursor.fetchone()[0]
        cursor.execute("SELECT wal_sync FROM pg_stat_wal")
        wal_syncs = cursor.fetchone()[0]
    return {"commits": commits, "wal_syncs": wal_syncs}


def enqueue_tasks(n):
    """Record ``n`` durable tasks, as ``n`` sends in one transaction; return the seconds."""
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    from bench.durable_receivers import bench_durable_event
    from signalpost.accounts.models import Profile

    profiles = list(Profile.objects.order_by("pk")[:50])
    started = time.perf_counter()
    with transaction.atomic():
        for index in range(n):
            profile = profiles[index % len(profiles)]
            bench_durable_event.send(
                sender=Profile, profile=profile, user_email=profile.email, source="form"
            )
    elapsed = time.perf_counter() - started
    # Fresh planner statistics and no leftover dead rows, the same for every run.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f'VACUUM ANALYZE "{DBTaskResult._meta.db_table}"')
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return elapsed


def worker_command(worker_id, *, profile_to=None):
    python = [sys.executable, *(["-m", "cProfile", "-o", profile_to] if profile_to else [])]
    return [
        *python,
        "manage.py",
        "db_worker",
        "--batch",
        "--no-reload",
        "--no-startup-delay",
        "--interval=0",
        f"--worker-id={worker_id}",
    ]


def run_workers(count, *, tag, logdir, pg_database, profile_to=None):
    """Start ``count`` worker processes, wait until all have exited; return what happened."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DURABLE_RECEIVER_MODULES": "bench.durable_receivers",
    }
    logs = [open(Path(logdir) / f"{tag}-{i}.log", "w") for i in range(count)]  # noqa: SIM115
    processes = []
    rusage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    counters_before = pg_counters()
    launched = time.time()
    try:
        for i, log in enumerate(logs):
            command = worker_command(f"{tag}-{i}", profile_to=profile_to)
            processes.append(
                subprocess.Popen(
                    command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        sampler = CpuSampler(worker_pids=[p.pid for p in processes], pg_database=pg_database)
        while any(process.poll() is None for process in processes):
            sampler.sample()
            if time.time() - launched > WORKER_TIMEOUT_S:
                raise RuntimeError(f"workers {tag} still running after {WORKER_TIMEOUT_S} s")
            time.sleep(SAMPLE_INTERVAL_S)
        sampler.sample()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    exited = time.time()
    rusage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    counters_after = pg_counters()
    for i, process in enumerate(processes):
        if process.returncode != 0:
            tail = (Path(logdir) / f"{tag}-{i}.log").read_text()[-3000:]
            raise RuntimeError(f"worker {tag}-{i} exited with {process.returncode}:\n{tail}")
    cpu_s = sum(
        getattr(rusage_after, field) - getattr(rusage_before, field)
        for field in ("ru_utime", "ru_stime")
    )
    counters = None
    if counters_before:
        counters = {key: counters_after[key] - counters_before[key] for key in counters_before}
    return {
        "launched": launched,
        "exited": exited,
        "cpu_s": cpu_s,
        "sampler": sampler,
        "counters": counters,
    }


def drain(count, *, n, tag, logdir, pg_database):
    """Enqueue ``n`` tasks, drain them with ``count`` workers; return the measurements."""
    from django.tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    enqueue_s = enqueue_tasks(n)
    run = run_workers(count, tag=tag, logdir=logdir, pg_database=pg_database)
    rows = list(
        DBTaskResult.objects.values_list("status", "started_at", "finished_at", "worker_ids")
    )
    done = [row for row in rows if row[0] == TaskResultStatus.SUCCESSFUL]
    if len(done) != n or len(rows) != n:
        raise AssertionError(f"{tag}: {len(done)} of {len(rows)} tasks successful, expected {n}")
    by_worker = {}
    for _, started, finished, worker_ids in done:
        by_worker.setdefault(worker_ids[-1], []).append((started.timestamp(), finished.timestamp()))
    first_start = min(started for times in by_worker.values() for started, _ in times)
    last_finish = max(finished for times in by_worker.values() for _, finished in times)
    span = last_finish - first_start
    # The window in which every worker that ran a task was running tasks.
    window_start = max(min(s for s, _ in times) for times in by_worker.values())
    window_end = min(max(f for _, f in times) for times in by_worker.values())
    in_window = sum(
        1
        for times in by_worker.values()
        for started, finished in times
        if window_start <= started and finished <= window_end
    )
    window = window_end - window_start
    cores = run["sampler"].cores_between(first_start, last_finish)
    counters = run["counters"]
    return {
        "workers": count,
        "rate": n / span,
        "window_rate": in_window / window if window > 0 and in_window else None,
        "span_s": span,
        "startup_s": first_start - run["launched"],
        "exit_s": run["exited"] - last_finish,
        "wall_rate": n / (run["exited"] - run["launched"]),
        "tasks_per_worker": sorted((len(times) for times in by_worker.values()), reverse=True),
        "cpu_s": run["cpu_s"],
        "cores": cores,
        "commits_per_task": counters["commits"] / n if counters else None,
        "wal_syncs_per_task": counters["wal_syncs"] / n if counters else None,
        "enqueue_rate": n / enqueue_s,
    }


SPIN = """
import time
started = time.perf_counter()
loops = 0
while time.perf_counter() - started < {seconds}:
    sum(range(1000))
    loops += 1
print(loops)
"""


def cpu_ceiling(seconds=1.0):
    """Return how much faster 2 CPU-bound processes run than 1, right now.

    On an idle 2-core machine that is about 2.0; other users' processes lower it. No
    worker pool can scale better than this, whatever the database.
    """
    code = SPIN.format(seconds=seconds)

    def spin(count):
        processes = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        return sum(int(process.communicate()[0]) for process in processes)

    return spin(2) / spin(1)


def bench_workers(*, n, pairs, logdir, pg_database):
    """(b) Drain ``n`` tasks with 1 and with 2 workers, alternating the order."""
    from django_tasks_db.models import DBTaskResult

    from signalpost.accounts.models import Profile

    Profile.objects.bulk_create([Profile(email=f"bench-worker-{i}@example.com") for i in range(50)])
    # Start-up and shut-down of a worker with nothing to do, for reference.
    DBTaskResult.objects.all().delete()
    empty = [
        run_workers(1, tag=f"empty{i}", logdir=logdir, pg_database=pg_database) for i in range(2)
    ]
    idle = {
        "wall_s": median([run["exited"] - run["launched"] for run in empty]),
        "cpu_s": median([run["cpu_s"] for run in empty]),
    }
    # One untimed drain warms the caches (file system, PostgreSQL buffers).
    drain(1, n=min(n, 200), tag="warmup", logdir=logdir, pg_database=pg_database)
    runs = {1: [], 2: []}
    ratios = []
    window_ratios = []
    quiet_ratios = []
    ceilings = []
    for pair in range(pairs):
        order = (1, 2) if pair % 2 == 0 else (2, 1)
        this_pair = {}
        ceilings.append(cpu_ceiling())
        for count in order:
            print(f"  drain {pair + 1}/{pairs}: {count} worker(s), {n} tasks", file=sys.stderr)
            result = drain(
                count, n=n, tag=f"p{pair}w{count}", logdir=logdir, pg_database=pg_database
            )
            runs[count].append(result)
            this_pair[count] = result
        ratios.append(this_pair[2]["rate"] / this_pair[1]["rate"])
        others = [run["cores"]["other"] for run in this_pair.values() if run["cores"]]
        if others and max(others) <= QUIET_OTHER_CORES:
            quiet_ratios.append(ratios[-1])
        if this_pair[2]["window_rate"] and this_pair[1]["window_rate"]:
            window_ratios.append(this_pair[2]["window_rate"] / this_pair[1]["window_rate"])
    DBTaskResult.objects.all().delete()
    ceilings.append(cpu_ceiling())
    return {
        "idle": idle,
        "runs": runs,
        "ratios": ratios,
        "window_ratios": window_ratios,
        "quiet_ratios": quiet_ratios,
        "ceilings": ceilings,
    }


def worker_statements(n=20):
    """Run django-tasks-db's own worker loop (not ``db_worker``'s batch loop, for comparison)
    in this process over ``n`` tasks; return the SQL it sends."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    enqueue_tasks(n)
    health_checks = 0
    is_usable = connection.is_usable

    def counting_is_usable():
        nonlocal health_checks
        health_checks += 1
        return is_usable()

    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="bench-inprocess",
        excluded_queue_names=[],
    )
    connection.is_usable = counting_is_usable
    try:
        with CaptureQueriesContext(connection) as captured:
            worker.run()
    finally:
        del connection.is_usable
    queries = [" ".join(query["sql"].split()) for query in captured.captured_queries]
    DBTaskResult.objects.all().delete()
    # Every loop starts by looking for a ready task; show the statements of a middle one.
    starts = [
        i
        for i, sql in enumerate(queries)
        if (sql.startswith("SELECT") and "dbtaskresult" in sql and sql.endswith("LIMIT 1"))
        or "FOR UPDATE SKIP LOCKED" in sql
    ]
    # SQLite logs the BEGIN that opens the claiming transaction: it belongs to the loop.
    starts = [i - 1 if i and queries[i - 1].startswith("BEGIN") else i for i in starts]
    middle = len(starts) // 2
    one_task = queries[starts[middle] : starts[middle + 1]] if len(starts) > 2 else queries
    # The last loop found no task: its statements are not any task's.
    per_task = (starts[-1] if starts else len(queries)) / n
    return {
        "statements_per_task": per_task,
        # SQLite's is_usable() sends no query; PostgreSQL's sends SELECT 1.
        "health_checks_per_task": health_checks / n if connection.vendor == "postgresql" else 0,
        "one_task": [sql[:110] for sql in one_task],
        **worker_loop_split(),
    }


def worker_loop_split(n=200):
    """Run the worker loop in this process over ``n`` tasks, timing the two writes of each
    task: the claim transaction (find a ready task, mark it running, commit) and the result
    UPDATE. On SQLite both hold the database's only write lock; return ms per task."""
    import contextlib

    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    enqueue_tasks(n)
    spent = {"claim": 0.0, "result": 0.0}
    exclusive_transaction = db_worker.exclusive_transaction
    set_successful = DBTaskResult.set_successful

    @contextlib.contextmanager
    def timed_claim(*args, **kwargs):
        started = time.perf_counter()
        with exclusive_transaction(*args, **kwargs):
            yield
        spent["claim"] += time.perf_counter() - started

    def timed_result(self, *args, **kwargs):
        started = time.perf_counter()
        set_successful(self, *args, **kwargs)
        spent["result"] += time.perf_counter() - started

    worker = db_worker.Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="bench-inprocess-timed",
        excluded_queue_names=[],
    )
    db_worker.exclusive_transaction = timed_claim
    DBTaskResult.set_successful = timed_result
    try:
        started = time.perf_counter()
        worker.run()
        total = time.perf_counter() - started
    finally:
        db_worker.exclusive_transaction = exclusive_transaction
        DBTaskResult.set_successful = set_successful
    DBTaskResult.objects.all().delete()
    return {
        "loop_ms": total / n * 1000,
        "claim_ms": spent["claim"] / n * 1000,
        "result_ms": spent["result"] / n * 1000,
    }


def profile_worker(*, n, logdir, pg_database):
    """Drain ``n`` tasks with one worker under cProfile; return the top functions."""
    import io
    import pstats

    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    enqueue_tasks(n)
    output = str(Path(logdir) / "worker.prof")
    run_workers(1, tag="profile", logdir=logdir, pg_database=pg_database, profile_to=output)
    DBTaskResult.objects.all().delete()
    text = io.StringIO()
    stats = pstats.Stats(output, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return text.getvalue()


def run_child(args):
    settings = sizes(args.quick)
    parts = set(args.parts.split(","))
    url = os.environ.get("DATABASE_URL") if args.child == "postgres" else None
    logdir = tempfile.mkdtemp(prefix="signalpost-bench-durable-")
    try:
        with BenchDatabase(url) as database:
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0, interactive=False)
            import bench.durable_receivers  # noqa: F401  (connects the receivers)

            described = describe_database()
            enqueue = workers = statements = profile = None
            if "enqueue" in parts:
                print(f"{described['name']}: enqueue cost ...", file=sys.stderr)
                enqueue = bench_enqueue(batch=settings["batch"], repeats=settings["repeats"])
            if "workers" in parts:
                print(f"{described['name']}: worker throughput ...", file=sys.stderr)
                workers = bench_workers(
                    n=settings["tasks"],
                    pairs=settings["pairs"],
                    logdir=logdir,
                    pg_database=database.pg_name,
                )
                statements = worker_statements()
            if args.profile_worker:
                print(f"{described['name']}: profiling one worker ...", file=sys.stderr)
                profile = profile_worker(
                    n=settings["tasks"], logdir=logdir, pg_database=database.pg_name
                )
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    if workers:
        workers["runs"] = {
            count: [{k: v for k, v in run.items() if k != "sampler"} for run in runs]
            for count, runs in workers["runs"].items()
        }
    result = {
        "database": described,
        "settings": settings,
        "enqueue": enqueue,
        "workers": workers,
        "worker_statements": statements,
        "profile": profile,
    }
    Path(args.result).write_text(json.dumps(result))


# Report -------------------------------------------------------------------------------------


def fmt_range(values, pattern):
    low, high = quartiles(values)
    return f"{pattern.format(low)}-{pattern.format(high)}"


def cores_text(runs):
    cores = [run["cores"] for run in runs if run["cores"]]
    if not cores:
        return "n/a"
    parts = {key: median([c[key] for c in cores]) for key in cores[0]}
    text = f"{parts['machine']:.2f} = workers {parts['workers']:.2f}"
    if any(c["postgres"] for c in cores):
        text += f" + PG {parts['postgres']:.2f}"
    return text + f" + other {parts['other']:.2f}"


def report(results):
    import platform

    databases = list(results)
    first = results[databases[0]]
    settings = first["settings"]
    print()
    print(
        f"Signalpost durable receiver benchmarks, {time.strftime('%Y-%m-%d')}; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{value:.1f}" for value in os.getloadavg())
        + " (--quick)" * settings["quick"]
    )
    for name in databases:
        described = results[name]["database"]
        print(
            f"  {described['name']}: "
            + ", ".join(f"{key}={value}" for key, value in described["settings"].items())
        )
    print()

    header = ["", *(results[name]["database"]["name"] for name in databases)]

    def row(label, cell):
        return [label, *(cell(results[name]) for name in databases)]

    if all(results[name]["enqueue"] for name in databases):
        report_enqueue(settings, header, row)
    if all(results[name]["workers"] for name in databases):
        report_workers(results, databases, settings, header, row)
    for name in databases:
        if results[name]["profile"]:
            print()
            print(f"cProfile of one worker, {results[name]['database']['name']}:")
            print(results[name]["profile"])


def report_enqueue(settings, header, row):
    def enqueue_goal(result):
        met = result["enqueue"]["diff_us"] < ENQUEUE_GOAL_MS * 1000
        verdict = "met" if met else "MISSED"
        if result["database"]["name"].startswith("SQLite"):
            verdict += " (goal is for PostgreSQL)"
        return verdict

    print_table(
        f"(a) Event = atomic(Profile.objects.create + send() to 1 receiver); "
        f"{settings['repeats']} interleaved batches of {settings['batch']} per variant",
        header,
        [
            row(
                "inline receiver, us/event (statements)",
                lambda r: (
                    f"{r['enqueue']['per_event_us']['inline']:.0f} "
                    f"({r['enqueue']['statements']['inline']})"
                ),
            ),
            row(
                "durable receiver, us/event (statements)",
                lambda r: (
                    f"{r['enqueue']['per_event_us']['durable']:.0f} "
                    f"({r['enqueue']['statements']['durable']})"
                ),
            ),
            row(
                "enqueue cost = durable - inline, ms (IQR)",
                lambda r: (
                    f"{r['enqueue']['diff_us'] / 1000:.3f} "
                    f"({r['enqueue']['diff_iqr_us'][0] / 1000:.3f} to "
                    f"{r['enqueue']['diff_iqr_us'][1] / 1000:.3f})"
                ),
            ),
            row(f"goal: enqueue < {ENQUEUE_GOAL_MS:g} ms on PostgreSQL", enqueue_goal),
            row(
                "yardstick: inline + 1 more Profile INSERT, us/event (statements)",
                lambda r: (
                    f"{r['enqueue']['per_event_us']['inline+insert']:.0f} "
                    f"({r['enqueue']['statements']['inline+insert']})"
                ),
            ),
            row(
                "cost of that INSERT = yardstick - inline, ms (IQR)",
                lambda r: (
                    f"{r['enqueue']['insert_diff_us'] / 1000:.3f} "
                    f"({r['enqueue']['insert_diff_iqr_us'][0] / 1000:.3f} to "
                    f"{r['enqueue']['insert_diff_iqr_us'][1] / 1000:.3f})"
                ),
            ),
        ],
    )
    print("   statements as captured by Django, BEGIN/COMMIT included where Django logs them")
    print()


def report_workers(results, databases, settings, header, row):
    def rate(count, key="rate"):
        def cell(result):
            runs = result["workers"]["runs"][str(count)]
            values = [run[key] for run in runs if run[key]]
            if not values:
                return "n/a"
            return f"{median(values):.0f} ({fmt_range(values, '{:.0f}')})"

        return cell

    def ratio(key):
        def cell(result):
            values = result["workers"][key]
            if not values:
                return "n/a"
            return f"{median(values):.2f}x ({fmt_range(values, '{:.2f}')})"

        return cell

    def scaling_goal(result):
        def verdict(ratios):
            return "met" if median(ratios) >= SCALING_GOAL else "MISSED"

        workers = result["workers"]
        text = f"all pairs: {verdict(workers['ratios'])}"
        if workers["quiet_ratios"]:
            text += f"; quiet pairs: {verdict(workers['quiet_ratios'])}"
        elif median(workers["ratios"]) < SCALING_GOAL > median(workers["ceilings"]) and (
            median(workers["ratios"]) >= 0.8 * median(workers["ceilings"])
        ):
            # The workers scaled about as well as CPU-bound processes could meanwhile, and
            # those could not reach the goal: the machine was too busy to tell.
            text += " (inconclusive: busy machine, see CPU ceiling)"
        return text

    def quiet_ratio(result):
        workers = result["workers"]
        values = workers["quiet_ratios"]
        if not values:
            return f"none of {len(workers['ratios'])} pairs quiet"
        text = f"{median(values):.2f}x"
        if len(values) > 1:
            text += f" ({min(values):.2f}-{max(values):.2f})"
        return text + f", {len(values)} of {len(workers['ratios'])} pairs"

    def per_task(count, key, pattern):
        def cell(result):
            values = [run[key] for run in result["workers"]["runs"][str(count)]]
            if any(value is None for value in values):
                return "n/a"
            return pattern.format(median(values))

        return cell

    def worker_cpu_ms(count):
        def cell(result):
            idle_cpu = result["workers"]["idle"]["cpu_s"]
            values = [
                (run["cpu_s"] - count * idle_cpu) / result["settings"]["tasks"] * 1000
                for run in result["workers"]["runs"][str(count)]
            ]
            return f"{median(values):.2f}"

        return cell

    def balance(count):
        def cell(result):
            runs = result["workers"]["runs"][str(count)]
            return " / ".join(str(n) for n in runs[len(runs) // 2]["tasks_per_worker"])

        return cell

    def loop_split(result):
        split = result["worker_statements"]
        rest = split["loop_ms"] - split["claim_ms"] - split["result_ms"]
        return (
            f"{split['loop_ms']:.2f} = {split['claim_ms']:.2f} + {split['result_ms']:.2f}"
            f" + {rest:.2f}"
        )

    def write_share(result):
        split = result["worker_statements"]
        return f"{(split['claim_ms'] + split['result_ms']) / split['loop_ms']:.0%}"

    def startup(result):
        runs = [run for runs in result["workers"]["runs"].values() for run in runs]
        return f"{median([run['startup_s'] for run in runs]):.2f}"

    rows = [
        row("worker start-up: launch -> first task, s", startup),
        row(
            "idle worker (no task) wall / CPU, s",
            lambda r: f"{r['workers']['idle']['wall_s']:.2f} / {r['workers']['idle']['cpu_s']:.2f}",
        ),
        row("1 worker, tasks/s (IQR)", rate(1)),
        row("2 workers, tasks/s (IQR)", rate(2)),
        row("ratio 2 / 1 workers, all pairs (IQR)", ratio("ratios")),
        row(f"ratio, quiet pairs (others <= {QUIET_OTHER_CORES} core)", quiet_ratio),
        row(f"goal: 2 workers >= {SCALING_GOAL}x of 1", scaling_goal),
        row("CPU ceiling: 2 / 1 CPU-bound processes", ratio("ceilings")),
        row("2 workers, both running, tasks/s", rate(2, "window_rate")),
        row("ratio, both-running window", ratio("window_ratios")),
        row("tasks per worker, 2 workers (a middle run)", balance(2)),
        row("launch to exit incl. start-up, 1 worker, tasks/s", rate(1, "wall_rate")),
        row("launch to exit incl. start-up, 2 workers, tasks/s", rate(2, "wall_rate")),
        row("worker CPU per task, 1 worker, ms", worker_cpu_ms(1)),
        row("worker CPU per task, 2 workers, ms", worker_cpu_ms(2)),
        row("cores busy while draining, 1 worker", lambda r: cores_text(r["workers"]["runs"]["1"])),
        row("cores busy, 2 workers", lambda r: cores_text(r["workers"]["runs"]["2"])),
        row("commits per task (pg_stat_database)", per_task(1, "commits_per_task", "{:.2f}")),
        row("WAL syncs per task (whole server)", per_task(1, "wal_syncs_per_task", "{:.2f}")),
        row(
            "django-tasks-db's own loop (for comparison): SQL statements per task",
            lambda r: (
                f"{r['worker_statements']['statements_per_task']:.2f}"
                + (
                    f" + {r['worker_statements']['health_checks_per_task']:.2f} SELECT 1"
                    if r["worker_statements"]["health_checks_per_task"]
                    else ""
                )
            ),
        ),
        row(
            "django-tasks-db's loop in process: ms per task = claim txn + result UPDATE + rest",
            loop_split,
        ),
        row("  share in the two writes (SQLite: under its one write lock)", write_share),
        row("enqueue N sends in one atomic(), tasks/s", rate(1, "enqueue_rate")),
    ]
    print_table(
        f"(b) {settings['tasks']} no-op durable tasks drained by real db_worker processes; "
        f"{settings['pairs']} runs each of 1 and 2 workers, alternating",
        header,
        rows,
    )
    print(
        "   tasks/s = N / (first task's started_at -> last task's finished_at), from the task\n"
        "   rows: process start-up and exit are left out. 'both running' counts only the\n"
        "   tasks run while every worker was running tasks. Cores busy (of "
        f"{os.cpu_count()}): /proc samples\n"
        "   over the drain; 'other' is everything else on the machine, other users included."
    )
    print()
    for name in databases:
        statements = results[name]["worker_statements"]
        print(
            f"   one task in django-tasks-db's own loop (db_worker now claims in batches), "
            f"{results[name]['database']['name']}:"
        )
        for sql in statements["one_task"]:
            print(f"     {sql}")


def main():
    args = parse_args()
    unknown = set(args.parts.split(",")) - {"enqueue", "workers"}
    if unknown:
        sys.exit(f"--parts: unknown {', '.join(sorted(unknown))}")
    if args.child:
        run_child(args)
        return
    started = time.perf_counter()
    results = run_children(args, choose_databases(args.databases))
    report(results)
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
