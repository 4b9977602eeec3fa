"""The production start under load: ``signalpost serve`` against ``runserver``.

Run from the repository root::

    .venv/bin/python bench/production.py            # 10 s per phase (~2.5 min)
    .venv/bin/python bench/production.py --quick    # 4 s per phase (~1.5 min)

What runs (everything on 127.0.0.1, on free ports):

- a fresh PostgreSQL database (``signalpost_bench_prod_<pid>``) and Redis (database 15,
  flushed before and after) as the cache;
- ``signalpost serve`` (the documented production start) with ``WEB_CONCURRENCY=2``
  granian processes of ``WEB_THREADS`` threads (default 2) and ``TASK_WORKERS=1``,
  ``SITE_URL=https://...``, static files collected into a temporary ``STATIC_ROOT`` and
  served by WhiteNoise. The time from starting the command to the first 200 of ``/`` and
  of ``/healthz`` (which needs a worker's heartbeat) is measured twice: on the empty
  database (every migration runs) and again after a stop on the migrated one (a restart
  after an upgrade without migrations);
- then the demo data (``load_demo_data --no-admin``: 5 newsletters in 3 topics);
- ``manage.py runserver`` in development mode (``DEBUG=1``, Django's static file view), on
  the same database and cache, as ``./bin/serve`` runs it;
- the load: wrk (``apt-get install -y wrk``), one thread, 32 connections, a 2 s warm-up
  then the measured run, on each of ``/`` (the home page: topics and newsletters with a
  subscribe form each), its stylesheet (hashed name in production) and ``/healthz``, one
  page at a time. Requests per second and wrk's latency percentiles (from the request's
  first byte on an open connection to the last byte of the answer); any answer other than
  2xx is counted and reported.

Afterwards the script stops everything it started and drops the database.
"""

import argparse
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import REPO_ROOT, Service, free_port, pg_connect, pg_url_for, run

WRK = shutil.which("wrk")
CLIENTS = 32
WARMUP_SECONDS = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def fetch_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None, ""


def wait_for_200(url, *, service, timeout=180):
    """Seconds until ``url`` answers 200 (polled every 50 ms), or stop with the log."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if fetch_status(url)[0] == 200:
            return time.monotonic() - started
        if not service.alive():
            raise SystemExit(f"{service.name} exited:\n{service.tail()}")
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer 200 within {timeout} s:\n{service.tail()}")


def production_start(env, logdir, name):
    """Start ``signalpost serve``; return it with the seconds to the first 200s."""
    started = time.monotonic()
    service = Service(name, [str(VENV_BIN / "signalpost"), "serve"], env=env, logdir=logdir)
    base = f"http://{env['SIGNALPOST_ADDRESS']}"
    wait_for_200(base + "/", service=service)
    home = time.monotonic() - started
    wait_for_200(base + "/healthz", service=service)
    return service, home, time.monotonic() - started


def wrk(url, seconds):
    """Run wrk against ``url``; return requests/s, p50 and p99 in ms, and non-2xx count."""
    argv = [WRK, "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "--timeout=10s", url]
    output = run(argv, env=os.environ, what=f"wrk {url}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = {
        int(p): float(value) * UNITS[unit]
        for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate,
        "p50": percentiles[50],
        "p99": percentiles[99],
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def measure(base, paths, seconds):
    results = {}
    for label, path in paths.items():
        wrk(base + path, WARMUP_SECONDS)
        results[label] = wrk(base + path, seconds)
    return results


def in_app_ms(log_path, route):
    """p50 and p99 of the app's own time for ``route`` (its request log lines), in ms."""
    pattern = re.compile(rf" GET {re.escape(route)} 200 ([\d.]+)ms$")
    times = sorted(
        float(match.group(1))
        for line in Path(log_path).read_text(errors="replace").splitlines()
        if (match := pattern.search(line))
    )
    if not times:
        return None
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def redis_flush():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per phase instead of 10 s")
    args = parser.parse_args()
    if not WRK:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    seconds = 4 if args.quick else 10
    dbname = f"signalpost_bench_prod_{os.getpid()}"
    logdir = Path(tempfile.mkdtemp(prefix="signalpost-bench-prod-"))
    services = []
    with pg_connect() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    redis_flush()
    try:
        common = {
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "SIGNALPOST_MODE"}},
            "DATABASE_URL": pg_url_for(dbname),
            "CACHE_URL": REDIS_URL,
            "EMAIL_URL": "locmem:",
            "SECRET_KEY": "bench-" + "k" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
        }
        production = {
            **common,
            "SITE_URL": "https://news.example.com",
            "SIGNALPOST_ADDRESS": f"127.0.0.1:{free_port()}",
            "STATIC_ROOT": str(logdir / "static"),
            "WEB_CONCURRENCY": "2",
            "TASK_WORKERS": "1",
        }
        server, cold_home, cold_health = production_start(production, logdir, "serve-cold")
        server.stop(timeout=120)
        server, warm_home, warm_health = production_start(production, logdir, "serve")
        services.append(server)
        run(
            [str(VENV_BIN / "python"), "manage.py", "load_demo_data", "--no-admin"],
            env={**production, "SIGNALPOST_MODE": "production"},
            what="load_demo_data",
        )
        prod_base = f"http://{production['SIGNALPOST_ADDRESS']}"
        page = fetch_status(prod_base + "/")[1]
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
        paths = {"/": "/", "stylesheet": stylesheet, "/healthz": "/healthz"}
        prod = measure(prod_base, paths, seconds)

        dev_address = f"127.0.0.1:{free_port()}"
        development = {**common, "SIGNALPOST_MODE": "development", "DEBUG": "1"}
        dev = Service(
            "runserver",
            [str(VENV_BIN / "python"), "manage.py", "runserver", dev_address, "--noreload"],
            env={**development, "SITE_URL": f"http://{dev_address}"},
            logdir=logdir,
        )
        services.append(dev)
        wait_for_200(f"http://{dev_address}/", service=dev)
        dev_paths = {**paths, "stylesheet": "/static/signalpost/site.css"}
        devs = measure(f"http://{dev_address}", dev_paths, seconds)
    finally:
        for service in reversed(services):
            service.stop(timeout=120)
        with pg_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        redis_flush()

    print(
        f"\n{CLIENTS} clients, wrk, {seconds} s per page after a {WARMUP_SECONDS} s warm-up; "
        f"production: granian, 2 processes + 1 task worker; runserver: DEBUG=1"
    )
    print("| page | signalpost serve req/s | p50 ms | p99 ms | runserver req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in paths:
        p, d = prod[label], devs[label]
        print(
            f"| `{label}` | {p['rate']:,.0f} | {p['p50']:.1f} | {p['p99']:.1f} "
            f"| {d['rate']:,.0f} | {d['p50']:.1f} | {d['p99']:.1f} |"
        )
    for label, route in (("/", "/"), ("/healthz", "/healthz")):
        figures = [in_app_ms(logdir / f"{name}.log", route) for name in ("serve", "runserver")]
        print(
            f"Inside the app (its request log), `{label}` p50 / p99 ms: signalpost serve "
            + " / ".join(f"{value:.1f}" for value in figures[0] or ())
            + ", runserver "
            + " / ".join(f"{value:.1f}" for value in figures[1] or ())
        )
    for name, results in (("production", prod), ("runserver", devs)):
        for label, figures in results.items():
            if figures["bad"] or figures["socket_errors"]:
                print(f"{name} {label}: {figures['bad']} non-2xx, {figures['socket_errors']}")
    print(
        f"\nStart to first 200: empty database (all migrations) `/` {cold_home:.1f} s, "
        f"`/healthz` {cold_health:.1f} s; migrated database `/` {warm_home:.1f} s, "
        f"`/healthz` {warm_health:.1f} s"
    )
    print(f"Logs: {logdir}")


if __name__ == "__main__":
    main()
