"""The web server's own share of a request: WSGI servers and their settings side by side.

Run from the repository root (one benchmark at a time on a shared machine)::

    flock /tmp/bench.lock .venv/bin/python bench/servers.py            # 8 s per run (~6 min)
    flock /tmp/bench.lock .venv/bin/python bench/servers.py --seconds 3
    # also: --setups "gunicorn gthread 2x4,granian 2x1"   --endpoints bare,healthz,click

What runs (everything on 127.0.0.1, on free ports):

- a fresh PostgreSQL database (``signalpost_bench_servers_<pid>``), migrated, and Redis
  (database 12, flushed before and after) as the cache; the static files collected; the
  sent issue of ``bench/clicks.py`` (``clicks_support/setup_issue.py``: 20,000 tracked
  paths) and the demo newsletters (``load_demo_data``);
- one task worker (``manage.py db_worker``) for the whole run: ``/healthz`` needs its
  heartbeat, and it records the clicks;
- for each server setup in turn, the server on Signalpost's WSGI application in production
  mode (as ``signalpost serve`` runs it), and for the ``bare`` endpoint the same server on
  ``servers_support/bare.py`` (a WSGI application that answers a 302 and nothing else: the
  server's floor, no Django);
- wrk, one thread, 32 connections, a 2 s warm-up then the measured run, on each endpoint:
  ``bare`` (the 302 of bare.py), ``healthz`` (``GET /healthz``: one query, one cache call),
  ``click`` (``GET /c/<token>``, cycling through the tracked paths, as bench/clicks.py),
  ``home`` (``GET /``, the demo newsletters) and ``css`` (the stylesheet, from WhiteNoise).

Reported per setup and endpoint: answers/s and p50/p99 (the answers with the wanted
status; any other is counted), and the server's CPU per answer (from ``/proc``: the
server's process and its descendants, live or reaped). The CPU per answer is the figure
that survives a busy machine; the rates and percentiles are that moment's.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from clicks import _manage_shell
from harness import (
    REPO_ROOT,
    Service,
    free_port,
    pg_connect,
    production_environment,
    run,
    tree_cpu_seconds,
    wait_ready,
)
from subscribe import percentile, wrk_figures

WRK = shutil.which("wrk")
CLIENTS = 32
WARMUP_SECONDS = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
HERE = Path(__file__).resolve().parent
SIGNALPOST_APP = "signalpost.wsgi:application"
BARE_APP = "bare:application"


def _gunicorn(workers, threads, worker_class="gthread"):
    def argv(app, host, port):
        return [
            str(VENV_BIN / "python"), "-m", "gunicorn", app, "--bind", f"{host}:{port}",
            "--workers", str(workers), "--threads", str(threads),
            "--worker-class", worker_class, "--access-logfile", "/dev/null",
            "--no-control-socket", "--max-requests", "5000", "--max-requests-jitter", "500",
        ]  # fmt: skip

    return argv


def _granian(workers, threads):
    def argv(app, host, port):
        return [
            str(VENV_BIN / "granian"), "--interface", "wsgi", app,
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--blocking-threads", str(threads), "--no-ws", "--http", "1",
        ]  # fmt: skip

    return argv


SETUPS = {
    "gunicorn gthread 2x4": _gunicorn(2, 4),
    "gunicorn gthread 2x1": _gunicorn(2, 1),
    "gunicorn gthread 4x1": _gunicorn(4, 1),
    "gunicorn sync 4": _gunicorn(4, 1, "sync"),
    "granian 2x1": _granian(2, 1),
    "granian 2x2": _granian(2, 2),
    "granian 2x4": _granian(2, 4),
    "granian 1x1": _granian(1, 1),
}
ENDPOINTS = ["bare", "healthz", "click", "home", "css"]


def _wrk(base, seconds, script, *args):
    argv = [
        WRK, "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--timeout=10s", "-s", str(script), base,
        "--", *args,
    ]  # fmt: skip
    return wrk_figures(run(argv, env=os.environ, what="wrk"))


def _measure(base, seconds, server_pid, script, *args):
    _wrk(base, WARMUP_SECONDS, script, *args)
    before = tree_cpu_seconds(server_pid)
    figures = _wrk(base, seconds, script, *args)
    cpu = tree_cpu_seconds(server_pid) - before
    latencies = figures["latencies"]
    return {
        "rate": figures["ok"] / figures["duration"],
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "other": figures["failed"] + sum(figures["errors"].values()),
        "cpu_ms": cpu * 1000 / max(1, figures["ok"]),
    }


def _serve(name, argv, env, logdir, cwd=REPO_ROOT):
    host, port = "127.0.0.1", free_port()
    service = Service(name, argv(SIGNALPOST_APP if cwd == REPO_ROOT else BARE_APP, host, port),
                      env=env, logdir=logdir, cwd=cwd)  # fmt: skip
    return service, port


def _stylesheet(base):
    import re
    import urllib.request

    with urllib.request.urlopen(base + "/") as answer:
        page = answer.read().decode()
    return re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)


def measure_setup(label, argv, env, logdir, seconds, endpoints, paths_file):
    """Every endpoint of ``endpoints`` on one server setup; {endpoint: figures}."""
    results = {}
    get = HERE / "servers_support" / "wrk_get.lua"
    if "bare" in endpoints:
        bare_env = {**env, "PYTHONPATH": str(HERE / "servers_support")}
        service, port = _serve(f"{label} bare".replace(" ", "-"), argv, bare_env, logdir,
                               cwd=HERE / "servers_support")  # fmt: skip
        try:
            _wait_port(port, service)
            results["bare"] = _measure(f"http://127.0.0.1:{port}", seconds, service.pid, get,
                                       "/", "302")  # fmt: skip
        finally:
            service.stop(timeout=60)
    service, port = _serve(label.replace(" ", "-"), argv, env, logdir)
    try:
        wait_ready(port, "/healthz", service=service, timeout=120)
        base = f"http://127.0.0.1:{port}"
        for endpoint in endpoints:
            if endpoint == "healthz":
                results[endpoint] = _measure(base, seconds, service.pid, get, "/healthz", "200")
            elif endpoint == "click":
                results[endpoint] = _measure(
                    base, seconds, service.pid, HERE / "clicks_support" / "wrk_paths.lua",
                    str(paths_file),
                )  # fmt: skip
            elif endpoint == "home":
                results[endpoint] = _measure(base, seconds, service.pid, get, "/", "200")
            elif endpoint == "css":
                results[endpoint] = _measure(base, seconds, service.pid, get,
                                             _stylesheet(base), "200")  # fmt: skip
    finally:
        service.stop(timeout=60)
    return results


def _wait_port(port, service, timeout=60):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise SystemExit(f"{service.name} exited while starting:\n{service.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{service.name} did not listen:\n{service.tail()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per run")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated labels")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    args = parser.parse_args()
    if not WRK:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    setups = [label.strip() for label in args.setups.split(",")]
    unknown = [label for label in setups if label not in SETUPS]
    if unknown:
        raise SystemExit(f"unknown setups {unknown}; known: {list(SETUPS)}")
    endpoints = [endpoint.strip() for endpoint in args.endpoints.split(",")]
    dbname = f"signalpost_bench_servers_{os.getpid()}"
    logdir = Path(tempfile.mkdtemp(prefix="signalpost-bench-servers-"))
    paths_file = logdir / "paths.txt"
    import redis

    with pg_connect() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    worker = None
    table = {}
    try:
        env = production_environment(
            dbname,
            cache_url=REDIS_URL,
            logdir=logdir,
            DJANGO_SETTINGS_MODULE="signalpost.settings",
            SIGNALPOST_MODE="production",
            BENCH_PATHS_FILE=str(paths_file),
        )
        python = str(VENV_BIN / "python")
        run([python, "manage.py", "migrate", "--no-input"], env=env, what="migrate")
        run([python, "manage.py", "collectstatic", "--no-input"], env=env, what="collectstatic")
        run([python, "manage.py", "load_demo_data", "--no-admin"], env=env, what="demo data")
        print(_manage_shell(env, (HERE / "clicks_support" / "setup_issue.py").read_text(),
                            "setup").strip())  # fmt: skip
        worker = Service("db_worker", [python, "manage.py", "db_worker"], env=env, logdir=logdir)
        for label in setups:
            table[label] = measure_setup(label, SETUPS[label], env, logdir, args.seconds,
                                         endpoints, paths_file)  # fmt: skip
            print(f"{label}: done", file=sys.stderr, flush=True)
    finally:
        if worker is not None:
            worker.process.send_signal(signal.SIGTERM)
            worker.stop(timeout=120)
        with pg_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        redis.Redis.from_url(REDIS_URL).flushdb()
    print(
        f"\n{CLIENTS} clients, wrk, {args.seconds} s per run after a {WARMUP_SECONDS} s "
        f"warm-up; load {os.getloadavg()[0]:.2f} (1 min average, after the run)"
    )
    print("| setup | endpoint | answers/s | p50 ms | p99 ms | other | server CPU ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, results in table.items():
        for endpoint, f in results.items():
            print(
                f"| {label} | {endpoint} | {f['rate']:,.0f} | {f['p50']:.1f} | {f['p99']:.1f} "
                f"| {f['other']:,} | {f['cpu_ms']:.2f} |"
            )
    print(f"Logs: {logdir}")


if __name__ == "__main__":
    main()
