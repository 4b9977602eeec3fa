"""Tracked-link redirects under load: ``GET /c/<token>`` on the production server.

Run from the repository root (one benchmark at a time on a shared machine)::

    flock /tmp/bench.lock .venv/bin/python bench/clicks.py           # 15 s (~2.5 min)
    flock /tmp/bench.lock .venv/bin/python bench/clicks.py --quick   # 5 s, no subscribe run

What runs (everything on 127.0.0.1, on free ports):

- a fresh PostgreSQL database (``signalpost_bench_clicks_<pid>``) and Redis (database 14,
  flushed before and after) as the cache;
- ``signalpost serve`` (the documented production start: gunicorn ``WEB_CONCURRENCY=2``
  workers of 4 threads, and ``TASK_WORKERS=1`` task worker, whose heartbeat records the
  clicks while the load runs);
- one sent issue with 10 links to 2,000 subscribers (``clicks_support/setup_issue.py``):
  20,000 distinct tracked paths, shuffled;
- wrk (``apt-get install -y wrk``), one thread, 32 connections, a browser's user agent,
  cycling through the paths (``clicks_support/wrk_paths.lua``): a 2 s warm-up, then the
  measured run. Requests per second and wrk's latency percentiles; every answer that is
  not a 302 is counted.

Then the server and its worker stop, and the clicks still in the inbox are recorded in
this process's child (``hits_record_all``, timed: the recording rate of one worker). No
click lost: the ``Engagement`` rows must number at least the 302s wrk counted (a request
in flight when wrk stops may still be recorded: at most one per connection more).

Last, unless ``--quick`` or ``--no-subscribe``, ``bench/subscribe.py --quick --variants
signalpost`` runs on the same machine right after, and the ratio of the two rates is
printed (goal: redirects at least 2x subscribe's requests/s, p99 under 50 ms).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import CLOCK_TICKS, REPO_ROOT, free_port, pg_connect, pg_url_for, proc_cpu_seconds, run
from production import UNITS, production_start
from subscribe import children_of

WRK = shutil.which("wrk")
CLIENTS = 32
WARMUP_SECONDS = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
SUPPORT = Path(__file__).resolve().parent / "clicks_support"
P99_GOAL_MS = 50.0
RATIO_GOAL = 2.0


def _redis_flush():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def _manage_shell(env, code, what):
    return run([str(VENV_BIN / "python"), "manage.py", "shell", "-c", code], env=env, what=what)


def _wrk(url, seconds, paths_file):
    argv = [
        WRK, "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "--timeout=10s",
        "-s", str(SUPPORT / "wrk_paths.lua"), url, "--", str(paths_file),
    ]  # fmt: skip
    output = run(argv, env=os.environ, what="wrk")
    percentiles = {
        int(p): float(value) * UNITS[unit]
        for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": percentiles[50],
        "p99": percentiles[99],
        "redirects": int(re.search(r"wrk-result redirects (\d+)", output).group(1)),
        "other": int(re.search(r"wrk-result other (\d+)", output).group(1)),
        "socket_errors": (re.search(r"Socket errors: (.*)", output) or [None, ""])[1],
    }


def _gunicorn_master(server_pid):
    """The gunicorn master under ``signalpost serve`` (not its task worker)."""
    todo = [server_pid]
    while todo:  # breadth first: the master comes before its workers
        pid = todo.pop(0)
        try:
            if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
        todo.extend(children_of(pid))
    raise SystemExit("no gunicorn under signalpost serve")


def _gunicorn_cpu(master):
    """CPU seconds gunicorn has used so far: the master, its live workers, and the workers
    it has reaped (``--max-requests`` replaces a worker every ~5,000 requests: a list of
    worker pids taken once would lose a replaced worker's time and could go backwards)."""
    fields = Path(f"/proc/{master}/stat").read_text().rpartition(")")[2].split()
    # utime, stime, cutime, cstime: the master's own and its reaped children's
    total = sum(int(fields[index]) for index in (11, 12, 13, 14)) / CLOCK_TICKS
    return total + sum(proc_cpu_seconds(pid) or 0.0 for pid in children_of(master))


def _subscribe_rate():
    """Requests/s of ``POST /subscribe/`` from bench/subscribe.py's quick Signalpost column."""
    output = subprocess.run(
        [sys.executable, "subscribe.py", "--quick", "--variants", "signalpost"],
        cwd=Path(__file__).resolve().parent, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"^\|\s*requests/s\s*\|\s*\**([\d.,]+)", output, re.M)
    cpu_line = r"server CPU per successful POST \(the three above\), ms\s*\|\s*([\d.]+)"
    cpu = re.search(cpu_line, output)
    if not found:
        raise SystemExit(f"no requests/s in bench/subscribe.py's output:\n{output[-2000:]}")
    return float(found.group(1).replace(",", "")), float(cpu.group(1)) if cpu else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s, and no subscribe run")
    parser.add_argument("--no-subscribe", action="store_true", help="skip the subscribe run")
    args = parser.parse_args()
    if not WRK:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    seconds = 5 if args.quick else 15
    dbname = f"signalpost_bench_clicks_{os.getpid()}"
    logdir = Path(tempfile.mkdtemp(prefix="signalpost-bench-clicks-"))
    paths_file = logdir / "paths.txt"
    with pg_connect() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    _redis_flush()
    server = None
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "SIGNALPOST_MODE"}},
            "DATABASE_URL": pg_url_for(dbname),
            "CACHE_URL": REDIS_URL,
            "EMAIL_URL": "locmem:",
            "SECRET_KEY": "bench-" + "k" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": "https://news.example.com",
            "SIGNALPOST_ADDRESS": f"127.0.0.1:{free_port()}",
            "STATIC_ROOT": str(logdir / "static"),
            "WEB_CONCURRENCY": "2",
            "TASK_WORKERS": "1",
            "BENCH_PATHS_FILE": str(paths_file),
        }
        server, _home, _health = production_start(env, logdir, "serve")
        shell_env = {**env, "SIGNALPOST_MODE": "production"}
        print(_manage_shell(shell_env, (SUPPORT / "setup_issue.py").read_text(), "setup").strip())
        base = f"http://{env['SIGNALPOST_ADDRESS']}"
        warmup = _wrk(base, WARMUP_SECONDS, paths_file)
        master = _gunicorn_master(server.pid)
        cpu_before = _gunicorn_cpu(master)
        measured = _wrk(base, seconds, paths_file)
        web_cpu_ms = (_gunicorn_cpu(master) - cpu_before) * 1000 / max(1, measured["redirects"])
        server.stop(timeout=120)
        server = None
        drained = _manage_shell(
            shell_env,
            "import time\n"
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from signalpost.engagement.models import Engagement, Hit\n"
            "left = Hit.objects.count()\n"
            "started = time.monotonic()\n"
            "hits_done = __import__('signalpost.engagement.services', fromlist=['x'])"
            ".hits_record_all(now=timezone.now() + timedelta(minutes=1))\n"
            "took = time.monotonic() - started\n"
            "print('drained', left, hits_done, f'{took:.2f}', Engagement.objects.count(), "
            "Hit.objects.count(), Engagement.objects.filter(is_human=True).count())\n",
            "drain",
        )
        numbers = re.search(r"drained (\d+) (\d+) ([\d.]+) (\d+) (\d+) (\d+)", drained)
        left, recorded_now, took, rows, still, human = (
            float(x) if "." in x else int(x) for x in numbers.groups()
        )
    finally:
        if server is not None:
            server.stop(timeout=120)
        with pg_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        _redis_flush()
    answered = warmup["redirects"] + measured["redirects"]
    none_lost = rows >= answered and still == 0 and rows - answered <= CLIENTS * 2
    print(
        f"\n{CLIENTS} clients, wrk, {seconds} s after a {WARMUP_SECONDS} s warm-up; "
        "signalpost serve: gunicorn -w 2 --threads 4 + 1 task worker, PostgreSQL"
    )
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average, after the run)")
    print("| | redirects/s | p50 ms | p99 ms | 302s | other answers |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| `GET /c/<token>` | {measured['rate']:,.0f} | {measured['p50']:.1f} | "
        f"{measured['p99']:.1f} | {measured['redirects']:,} | {measured['other']:,} |"
    )
    print(
        f"gunicorn CPU per redirect: {web_cpu_ms:.2f} ms (master and workers, replaced ones "
        "included); "
        f"redirects/s that CPU allows on 2 idle cores: {2000 / web_cpu_ms:,.0f}"
    )
    if measured["socket_errors"]:
        print("socket errors:", measured["socket_errors"])
    print(
        f"No click lost: {answered:,} redirects answered (warm-up included), {rows:,} "
        f"clicks recorded ({human:,} judged a person's), {still} left in the inbox; "
        f"{'OK' if none_lost else 'MISMATCH'}"
    )
    print(
        f"Recording: {left:,} clicks were still in the inbox when the server stopped "
        f"(the task worker's heartbeat had recorded the rest during the run); one process "
        f"recorded them in {took:.2f} s ({recorded_now / took if took else 0:,.0f} clicks/s)"
    )
    if not (args.quick or args.no_subscribe):
        subscribe, subscribe_cpu_ms = _subscribe_rate()
        ratio = measured["rate"] / subscribe
        if subscribe_cpu_ms:
            print(
                f"Server CPU per subscribe POST (its bench: gunicorn + backends + worker): "
                f"{subscribe_cpu_ms:.2f} ms, {subscribe_cpu_ms / web_cpu_ms:.1f}x a redirect's"
            )
        print(
            f"Subscribe (bench/subscribe.py --quick, Signalpost alone) right after: "
            f"{subscribe:,.1f} requests/s; redirects are {ratio:.1f}x "
            f"(goal {RATIO_GOAL:.0f}x: {'met' if ratio >= RATIO_GOAL else 'missed'}); "
            f"p99 goal {P99_GOAL_MS:.0f} ms: "
            f"{'met' if measured['p99'] < P99_GOAL_MS else 'missed'}"
        )


if __name__ == "__main__":
    main()
