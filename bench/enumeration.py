"""Do response times tell who is known? Median times of the public forms that take an
address, for a known address against an unknown one, against a real server.

Run from the repository root::

    .venv/bin/python bench/enumeration.py                 # 400 pairs per case, SQLite (~1 min)
    .venv/bin/python bench/enumeration.py --pg            # on a fresh PostgreSQL database
    .venv/bin/python bench/enumeration.py --code-from 2bf097c   # the code of another commit

What runs (everything on 127.0.0.1, on a free port): ``gunicorn signalpost.wsgi -w 1``
(one sync worker) from the project's ``.venv`` with ``DEBUG=0``, on a fresh SQLite file in
a temporary folder (or, with ``--pg``, a fresh PostgreSQL database
``signalpost_bench_enum_<pid>``, dropped afterwards), ``EMAIL_URL=locmem:``, and every rate
limit set high (``1000000/h``) rather than off, so that the cache is counted as in
production. No task worker runs: what is measured is the request.

Before the server starts, the database gets a single and a double opt-in newsletter and,
for each case and each pair, one known address in the case's state (an address is used
once, so each known try meets the state it is named for, whatever the code does with it).
Each unknown address is new. Every address is submitted once, so the per-address limits
cost the same cache calls for both.

Each case GETs its form once (CSRF cookie and token; the embedded form's case instead posts
without either, with ``Origin: https://blog.example.org``, an origin both newsletters
list), then runs pairs: one POST for a
known address and one for an unknown one, in alternating order (known first in even
pairs), each over a new connection (gunicorn's sync worker closes it), timed from
connect to the last byte. The first ``--warmup`` pairs are not counted. A case stops
after ``--pairs`` pairs or ``--seconds`` seconds. Every answer must be 200 and, with the
address taken out, the same for both; anything else is counted as an error.

The table: per case, the medians, their difference in ms and in % of the unknown
address's median, and whether the goal is met: the two medians within 0.5 ms or 15 %
of each other. Then the median of the differences within each pair (known minus
unknown, run back to back), which drift on a shared machine disturbs less, and the
spread of the unknown address's times (interquartile range), the noise to read the
difference against. The header gives the load average before and after.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from harness import Service, free_port, pg_connect, pg_url_for, run, wait_ready

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PROJECT_BIN = Path(sys.executable).parent
TOKEN_PATTERN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
GOAL_MS = 0.5
GOAL_FRACTION = 0.15
HIGH_RATE = "1000000/h"


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    form_path: str
    newsletter: str | None
    known_state: str  # profile, active (see SEED)
    # The embedded form: posted cross-origin from ORIGIN, without a CSRF cookie or token.
    embedded: bool = False


CASES = [
    Case(
        "subscribe-single",
        "/subscribe/ single opt-in, known: active",
        "/subscribe/",
        "single",
        "active",
    ),
    Case(
        "subscribe-double",
        "/subscribe/ double opt-in, known: active",
        "/subscribe/",
        "double",
        "active",
    ),
    Case(
        "unsubscribe-subscribed",
        "/unsubscribe/, known: subscribed",
        "/unsubscribe/",
        "single",
        "active",
    ),
    Case(
        "unsubscribe-profile",
        "/unsubscribe/, known: profile only",
        "/unsubscribe/",
        "single",
        "profile",
    ),
    Case("preferences", "/preferences/, known: profile", "/preferences/", None, "profile"),
    Case(
        "embed-single",
        "/embed/ single opt-in, known: active",
        "/embed/single/",
        "single",
        "active",
        embedded=True,
    ),
]
# The other website the embedded form's case posts from (listed by both newsletters).
ORIGIN = "https://blog.example.org"

# Run by manage.py shell in the code under test: newsletters and the known addresses.
SEED = """
import json, sys
from signalpost.accounts.services import profile_get_or_create
from signalpost.newsletters.models import Newsletter
from signalpost.newsletters.services import subscribe

single = Newsletter.objects.create(slug="single", name="Single", opt_in="single")
double = Newsletter.objects.create(slug="double", name="Double", opt_in="double")
newsletters = {"single": single, "double": double}
if any(field.name == "embed_allowed" for field in Newsletter._meta.fields):  # --code-from
    Newsletter.objects.update(embed_allowed=True, embed_origins="https://blog.example.org")
for case in json.loads(sys.stdin.read()):
    for email in case["emails"]:
        if case["state"] == "active":
            subscribe(email=email, newsletter=newsletters[case["newsletter"]], source="admin")
        else:
            profile_get_or_create(email=email)
import signalpost
print(signalpost.__file__)
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400, help="measured pairs per case")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured pairs first")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per case")
    parser.add_argument("--pg", action="store_true", help="on PostgreSQL instead of SQLite")
    parser.add_argument(
        "--code-from", metavar="REF", help="serve the code of this git commit (git archive)"
    )
    parser.add_argument("--cases", default=",".join(case.key for case in CASES))
    return parser.parse_args()


@dataclass
class Result:
    known: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    pair_differences: list = field(default_factory=list)
    errors: int = 0
    pairs: int = 0


def address(kind, case, number):
    return f"{kind}-{case.key}-{number}@example.com"


def get_form(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": "127.0.0.1"})
    response = connection.getresponse()
    body = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
    connection.close()
    return cookie, TOKEN_PATTERN.search(body)[1]


def timed_post(port, path, body, cookie, *, origin=None):
    """POST ``body`` over a new connection; return (seconds, status, answer)."""
    headers = {"Host": "127.0.0.1", "Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, response.status, answer.decode(errors="replace")


def run_case(case, port, args):
    cookie, token = ("", None) if case.embedded else get_form(port, case.form_path)
    result = Result()
    deadline = time.monotonic() + args.seconds
    for number in range(args.warmup + args.pairs):
        if time.monotonic() > deadline:
            break
        answers = {}
        milliseconds = {}
        order = ("known", "unknown") if number % 2 == 0 else ("unknown", "known")
        for kind in order:
            email = address(kind, case, number)
            fields = {"user_email": email}
            if token:
                fields["csrfmiddlewaretoken"] = token
            if case.newsletter and not case.embedded:  # the embedded form's URL names it
                fields["newsletter"] = case.newsletter
            seconds, status, answer = timed_post(
                port,
                case.form_path,
                urlencode(fields),
                cookie,
                origin=ORIGIN if case.embedded else None,
            )
            answers[kind] = (status, answer.replace(email, "ADDRESS"))
            milliseconds[kind] = seconds * 1000
        if answers["known"] != answers["unknown"] or answers["known"][0] != 200:
            result.errors += 1
        if number >= args.warmup:
            result.pairs += 1
            result.known.append(milliseconds["known"])
            result.unknown.append(milliseconds["unknown"])
            result.pair_differences.append(milliseconds["known"] - milliseconds["unknown"])
    return result


def main():
    args = parse_args()
    cases = [case for case in CASES if case.key in args.cases.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="signalpost-bench-enum-"))
    code_root = REPO_ROOT
    if args.code_from:
        code_root = workdir / "code"
        code_root.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.code_from], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(code_root)], input=archive, check=True)
    db_name = f"signalpost_bench_enum_{os.getpid()}"
    if args.pg:
        with pg_connect() as connection:
            connection.execute(f'CREATE DATABASE "{db_name}"')
        database_url = pg_url_for(db_name)
    else:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    env = {
        **os.environ,
        # The code under test first on the path, ahead of the editable install.
        "PYTHONPATH": str(code_root),
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "EMAIL_URL": "locmem:",
        "CACHE_URL": "locmem:",
        "SUBSCRIBE_RATE_PER_IP": HIGH_RATE,
        "SUBSCRIBE_RATE_PER_ADDRESS": HIGH_RATE,
        "PREFERENCES_LINK_RATE_PER_ADDRESS": HIGH_RATE,
        "UNSUBSCRIBE_RATE_PER_IP": HIGH_RATE,
    }
    python = str(PROJECT_BIN / "python")
    server = None
    try:
        run([python, "manage.py", "migrate", "--no-input"], env=env, cwd=code_root, what="migrate")
        seed = [
            {
                "state": case.known_state,
                "newsletter": case.newsletter,
                "emails": [address("known", case, n) for n in range(args.warmup + args.pairs)],
            }
            for case in cases
        ]
        seeded = subprocess.run(
            [python, "manage.py", "shell", "-c", SEED],
            input=json.dumps(seed),
            env=env,
            cwd=code_root,
            capture_output=True,
            text=True,
            check=True,
        )
        served_from = seeded.stdout.strip().splitlines()[-1]
        port = free_port()
        server = Service(
            "enumeration-gunicorn",
            [
                str(PROJECT_BIN / "gunicorn"),
                "signalpost.wsgi",
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "--no-control-socket",
            ],
            env=env,
            logdir=workdir,
            cwd=code_root,
        )
        wait_ready(port, "/subscribe/", service=server)
        load_before = os.getloadavg()[0]
        results = {case.key: run_case(case, port, args) for case in cases}
        load_after = os.getloadavg()[0]
    finally:
        if server is not None:
            server.stop()
        if args.pg:
            with pg_connect() as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, cases, results, served_from=served_from, load=(load_before, load_after))


def report(args, cases, results, *, served_from, load):
    database = "PostgreSQL" if args.pg else "SQLite"
    code = f"code of {args.code_from}" if args.code_from else "this worktree's code"
    print(
        f"Response time, known vs unknown address: gunicorn -w 1, {database}, {code} "
        f"({served_from}), {args.warmup} warm-up pairs, then up to {args.pairs} pairs or "
        f"{args.seconds:g} s per case; load average {load[0]:.1f} before, {load[1]:.1f} after"
    )
    header = (
        "case",
        "pairs",
        "known ms",
        "unknown ms",
        "diff ms",
        "diff %",
        "goal",
        "pair diff ms",
        "unknown IQR ms",
        "errors",
    )
    widths = (42, 6, 9, 11, 8, 7, 5, 13, 15, 6)
    print("  ".join(title.ljust(width) for title, width in zip(header, widths, strict=True)))
    for case in cases:
        result = results[case.key]
        if not result.known or not result.unknown:
            print(f"{case.label:<42}  no measurement")
            continue
        known = statistics.median(result.known)
        unknown = statistics.median(result.unknown)
        difference = known - unknown
        met = abs(difference) <= GOAL_MS or abs(difference) <= GOAL_FRACTION * unknown
        quartiles = statistics.quantiles(result.unknown, n=4)
        cells = (
            case.label,
            str(result.pairs),
            f"{known:.2f}",
            f"{unknown:.2f}",
            f"{difference:+.2f}",
            f"{100 * difference / unknown:+.1f}",
            "yes" if met else "NO",
            f"{statistics.median(result.pair_differences):+.2f}",
            f"{quartiles[2] - quartiles[0]:.2f}",
            str(result.errors),
        )
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
