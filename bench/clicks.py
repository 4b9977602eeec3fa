"""Tracked-link redirects under load, side by side with subscribe on the same server.

Run from the repository root (one benchmark at a time on a shared machine)::

    flock /tmp/bench.lock .venv/bin/python bench/clicks.py           # 15 s each (~2.5 min)
    flock /tmp/bench.lock .venv/bin/python bench/clicks.py --quick   # 5 s each
    # also: --no-subscribe

What runs (everything on 127.0.0.1, on free ports):

- a fresh PostgreSQL database (``signalpost_bench_clicks_<pid>``) and Redis (database 14,
  flushed before and after) as the cache;
- ``signalpost serve`` (the documented production start: granian, ``WEB_CONCURRENCY=2``
  processes of ``WEB_THREADS`` threads, and ``TASK_WORKERS=1`` task worker, whose
  heartbeat records the clicks while the load runs and which sends the confirmation
  emails to ``locmem:``),
  with ``SUBSCRIBE_RATE_PER_IP=0`` (every client is 127.0.0.1);
- one sent issue with 10 links to 2,000 subscribers (``clicks_support/setup_issue.py``):
  20,000 distinct tracked paths, shuffled; and a public double opt-in newsletter;
- wrk (``apt-get install -y wrk``), one thread, 32 connections, for each endpoint in turn
  a 2 s warm-up then the measured run: ``GET /c/<token>`` with a browser's user agent,
  cycling through the paths (``clicks_support/wrk_paths.lua``), then ``POST
  /subscribe/`` with a new address each time (``subscribe_support/wrk_post.lua``, the
  CSRF cookie and token from one GET of the form). Both count through
  ``wrk_support/tally.lua``: requests/s and latency percentiles of the answers that were
  what they should be (302; 200), and every other answer. For each, the web server's
  CPU per answer (from ``/proc``: its process and its descendants, live or reaped).

Then the server and its worker stop, and the clicks still in the inbox are recorded in
this process's child (``hits_record_all``, timed: the recording rate of one worker). No
click lost: the ``Engagement`` rows must number at least the 302s wrk counted (a request
in flight when a wrk run stops may still be recorded: at most one per connection and run
more). The ratio of the two rates is printed (goal: redirects at least 2x subscribe's
requests/s, p99 under 50 ms).
"""

import argparse
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from harness import (
    REPO_ROOT,
    free_port,
    pg_connect,
    production_environment,
    run,
    tree_cpu_seconds,
)
from production import production_start
from subscribe import TOKEN_PATTERN, children_of, percentile, wrk_figures

WRK = shutil.which("wrk")
CLIENTS = 32
WARMUP_SECONDS = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
SUPPORT = Path(__file__).resolve().parent / "clicks_support"
SUBSCRIBE_SCRIPT = Path(__file__).resolve().parent / "subscribe_support" / "wrk_post.lua"
SUBSCRIBE_SLUG = "bench-weekly"
P99_GOAL_MS = 50.0
RATIO_GOAL = 2.0


def _redis_flush():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def _manage_shell(env, code, what):
    return run([str(VENV_BIN / "python"), "manage.py", "shell", "-c", code], env=env, what=what)


def _wrk(url, seconds, script, *args):
    """One wrk run of ``script`` (which loads bench/wrk_support/tally.lua); its figures."""
    argv = [
        WRK, "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--timeout=10s", "-s", str(script), url,
        "--", *args,
    ]  # fmt: skip
    figures = wrk_figures(run(argv, env=os.environ, what="wrk"))
    latencies = figures["latencies"]
    return {
        "rate": figures["ok"] / figures["duration"],
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "ok": figures["ok"],
        "other": figures["failed"],
        "errors": dict(figures["errors"]),
    }


def _subscribe_form(base):
    """The wrk arguments of ``wrk_post.lua`` for POST /subscribe/ with the form's CSRF token."""
    with urllib.request.urlopen(f"{base}/subscribe/?newsletter={SUBSCRIBE_SLUG}") as answer:
        page = answer.read()
        cookies = [header.split(";", 1)[0] for header in answer.headers.get_all("Set-Cookie") or ()]
    token = TOKEN_PATTERN.search(page)
    if token is None or not any(c.startswith("csrftoken=") for c in cookies):
        raise SystemExit("GET /subscribe/ gave no CSRF token")
    marker = "ADDRESS-GOES-HERE"
    fields = {
        "csrfmiddlewaretoken": token.group(1).decode(),
        "user_email": marker,
        "name": "Bench Reader",
        "newsletter": SUBSCRIBE_SLUG,
        "website": "",
    }
    before, after = urlencode(fields).split(marker)
    return ["/subscribe/", "; ".join(cookies), before, after]


def _measured(base, seconds, master, script, arguments):
    """A warm-up and a measured wrk run of ``script``; the measured figures, with the web
    server's CPU per successful answer. ``arguments(part)`` gives the script's arguments of a part
    (``"w"``: warm-up, ``"m"``: measured)."""
    warmup = _wrk(base, WARMUP_SECONDS, script, *arguments("w"))
    cpu_before = tree_cpu_seconds(master)
    figures = _wrk(base, seconds, script, *arguments("m"))
    figures["cpu_ms"] = (tree_cpu_seconds(master) - cpu_before) * 1000 / max(1, figures["ok"])
    figures["warmup_ok"] = warmup["ok"]
    return figures


def _web_server(server_pid):
    """The web server under ``signalpost serve`` (granian; not its task worker)."""
    for pid in children_of(server_pid):
        try:
            if b"granian" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise SystemExit("no web server under signalpost serve")


def _row(label, figures):
    return (
        f"| {label} | {figures['rate']:,.0f} | {figures['p50']:.1f} | {figures['p99']:.1f} | "
        f"{figures['ok']:,} | {figures['other']:,} | {figures['cpu_ms']:.2f} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per endpoint, not 15")
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
    subscribe = None
    try:
        env = production_environment(
            dbname,
            cache_url=REDIS_URL,
            logdir=logdir,
            SIGNALPOST_ADDRESS=f"127.0.0.1:{free_port()}",
            WEB_CONCURRENCY="2",
            TASK_WORKERS="1",
            SUBSCRIBE_RATE_PER_IP="0",  # all 32 clients are 127.0.0.1
            BENCH_PATHS_FILE=str(paths_file),
            BENCH_SUBSCRIBE_SLUG=SUBSCRIBE_SLUG,
        )
        server, _home, _health = production_start(env, logdir, "serve")
        shell_env = {**env, "SIGNALPOST_MODE": "production"}
        print(_manage_shell(shell_env, (SUPPORT / "setup_issue.py").read_text(), "setup").strip())
        base = f"http://{env['SIGNALPOST_ADDRESS']}"
        master = _web_server(server.pid)
        clicks = _measured(
            base, seconds, master, SUPPORT / "wrk_paths.lua", lambda part: [str(paths_file)]
        )
        if not args.no_subscribe:
            form = _subscribe_form(base)
            subscribe = _measured(
                base,
                seconds,
                master,
                SUBSCRIBE_SCRIPT,
                lambda part: [*form, f"bench{part}", "example.com", "200", ""],
            )
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
    answered = clicks["warmup_ok"] + clicks["ok"]
    none_lost = rows >= answered and still == 0 and rows - answered <= CLIENTS * 2
    print(
        f"\n{CLIENTS} clients, wrk, {seconds} s per endpoint after a {WARMUP_SECONDS} s warm-up, "
        "one after the other on the same server: signalpost serve (granian, 2 processes "
        f"x {os.environ.get('WEB_THREADS', '2')} threads + 1 task worker), PostgreSQL, Redis"
    )
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average, after the run)")
    print("| | requests/s | p50 ms | p99 ms | as meant | other answers | web server CPU ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(_row("`GET /c/<token>` (302)", clicks))
    if subscribe:
        print(_row("`POST /subscribe/` (200)", subscribe))
    print(
        "web server CPU: per answer, its processes (replaced ones included); "
        f"redirects/s that CPU allows on 2 idle cores: {2000 / clicks['cpu_ms']:,.0f}"
    )
    for figures in (clicks, subscribe):
        if figures and figures["errors"]:
            print("socket errors:", figures["errors"])
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
    if subscribe:
        ratio = clicks["rate"] / subscribe["rate"]
        print(
            f"Redirects are {ratio:.2f}x subscribe's requests/s "
            f"(goal {RATIO_GOAL:.0f}x: {'met' if ratio >= RATIO_GOAL else 'missed'}); "
            f"web server CPU per subscribe POST is {subscribe['cpu_ms'] / clicks['cpu_ms']:.1f}x "
            f"a redirect's; p99 goal {P99_GOAL_MS:.0f} ms: "
            f"{'met' if clicks['p99'] < P99_GOAL_MS else 'missed'}"
        )


if __name__ == "__main__":
    main()
