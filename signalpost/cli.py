"""``signalpost``: the production start (see docs/deploy.md).

``signalpost serve`` checks the environment (every problem listed at once),
applies migrations, collects the static files, then runs the web server
(granian, ``WEB_CONCURRENCY`` processes) and ``TASK_WORKERS`` task workers
(``manage.py db_worker``) and watches them: SIGTERM or Ctrl+C stops them all
(a task worker finishes its task first), and if one of them dies the others
are stopped and the command exits non-zero, for systemd to restart.
``signalpost worker`` runs task workers only (worker machines, which need
only ``DATABASE_URL``, ``CACHE_URL`` and ``SECRET_KEY``).
``signalpost check`` only checks.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from signalpost.config import production_problems

DEFAULT_ADDRESS = "127.0.0.1:8000"
# A task worker finishes the task in hand before it exits; a batch of a send
# takes well under this. Then whatever still runs is killed.
STOP_TIMEOUT_SECONDS = 90
DJANGO = [sys.executable, "-m", "django"]


def _environment():
    environ = dict(os.environ)
    environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
    environ["SIGNALPOST_MODE"] = "production"
    return environ


def _say(message):
    print(f"signalpost: {message}", file=sys.stderr, flush=True)


def _prepare(environ):
    """Apply migrations and collect static files; return whether both worked."""
    for step in (["migrate", "--no-input"], ["collectstatic", "--no-input", "--verbosity", "0"]):
        _say(" ".join(["manage.py", *step[:1]]))
        if subprocess.run([*DJANGO, *step], env=environ).returncode != 0:
            _say(f"{step[0]} failed: not starting.")
            return False
    return True


def web_command(environ, *, app="signalpost.wsgi:application"):
    """The web server's command line: granian's WSGI interface (Rust HTTP, Django in
    ``WEB_THREADS`` threads of each of ``WEB_CONCURRENCY`` processes) at
    ``SIGNALPOST_ADDRESS`` (``host:port``, or ``unix:/path`` for a socket)."""
    address = environ.get("SIGNALPOST_ADDRESS", DEFAULT_ADDRESS)
    if address.startswith("unix:"):
        bind = ["--uds", address.removeprefix("unix:")]
    else:
        host, _, port = address.rpartition(":")
        bind = ["--host", host.strip("[]"), "--port", port]
    return [
        sys.executable, "-m", "granian", app, "--interface", "wsgi", *bind,
        "--workers", environ.get("WEB_CONCURRENCY", "2"),
        # Threads per process that run Django. The server's own work (HTTP, keep-alive,
        # queueing) is in Rust and needs none; two let a quick request pass a slow page
        # and were as cheap per request as one: bench/README.md (Web servers).
        "--blocking-threads", environ.get("WEB_THREADS", "2"),
        "--http", "1", "--no-ws",
        # Signalpost logs one line per request itself (signalpost.logs).
        *(["--access-log"] if environ.get("WEB_ACCESS_LOG") == "1" else []),
        # A process that crashed is replaced; one that grew past WEB_MAX_RSS_MB (a
        # leak) is replaced after its requests finish, as is every process on SIGHUP.
        "--respawn-failed-workers",
        "--workers-max-rss", environ.get("WEB_MAX_RSS_MB", "512"),
        "--workers-kill-timeout", "30",
    ]  # fmt: skip


def _commands(environ, *, web):
    """The processes to run: the web server (when ``web``) and the task workers."""
    commands = []
    if web and int(environ.get("WEB_CONCURRENCY", "2")) > 0:
        commands.append(web_command(environ))
    default_workers = "1" if web else "2"
    for _ in range(int(environ.get("TASK_WORKERS", default_workers))):
        commands.append([*DJANGO, "db_worker"])
    return commands


def _supervise(commands, environ):
    """Run ``commands`` until a signal asks them to stop or one of them exits; SIGHUP
    reloads the web server's processes (new code, no connection refused)."""
    stopping, reloads = [], []

    def stop(signum, frame):
        stopping.append(signum)

    def reload(signum, frame):
        reloads.append(signum)

    handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        return _run_until_stopped(commands, environ, stopping, reloads)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_until_stopped(commands, environ, stopping, reloads):
    """Start ``commands``; pass each SIGHUP in ``reloads`` on to the web server; when
    ``stopping`` fills or one exits, SIGTERM the rest; return the status to exit with
    (the first exited child's, else 0)."""
    children = [subprocess.Popen(command, env=environ) for command in commands]
    status = 0
    while not stopping:
        exited = [child for child in children if child.poll() is not None]
        if exited:
            child = exited[0]
            _say(f"{_name(child)} (pid {child.pid}) exited with {child.returncode}: stopping.")
            status = child.returncode or 1
            break
        while reloads:
            reloads.pop()
            for child in children:
                if _name(child) == "granian":
                    _say(f"reloading granian (pid {child.pid}).")
                    child.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return status


def _name(child):
    return "granian" if "granian" in child.args else "db_worker"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="signalpost", description="Run Signalpost in production (docs/deploy.md)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="migrate, collect static files, then run the web server (WEB_CONCURRENCY processes, "
        "at SIGNALPOST_ADDRESS) and TASK_WORKERS task workers (default 1)",
    )
    commands.add_parser("worker", help="run TASK_WORKERS task workers (default 2)")
    commands.add_parser("check", help="check the environment and exit")
    arguments = parser.parse_args(argv)

    environ = _environment()
    problems = production_problems(environ)
    if problems:
        _say("refusing to start in production:")
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if arguments.command == "check":
        _say("the environment is fit for production.")
        return 0
    web = arguments.command == "serve"
    if web and not _prepare(environ):
        return 1
    commands_to_run = _commands(environ, web=web)
    if not commands_to_run:
        _say("nothing to run (WEB_CONCURRENCY and TASK_WORKERS are 0).")
        return 2
    if web:
        address = environ.get("SIGNALPOST_ADDRESS", DEFAULT_ADDRESS)
        _say(f"serving http://{address}/ as {environ['SITE_URL']}")
    return _supervise(commands_to_run, environ)


if __name__ == "__main__":
    sys.exit(main())
