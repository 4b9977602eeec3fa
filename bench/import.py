"""Importing subscribers: ``manage.py import_subscribers`` on PostgreSQL and on SQLite.

Run from the repository root::

    .venv/bin/python bench/import.py            # 100,000 and 1,000,000 rows per database
    .venv/bin/python bench/import.py --quick    # 10,000 and 100,000 rows per database

What it does:

- generates one CSV file per size (``email,name``; deterministic, seeded): unique
  addresses in mixed case, about 1% invalid rows (no ``@``, nothing after it, a space,
  ``..`` or a leading ``-`` in the domain, 300 characters, an empty address) and about
  1% duplicates of earlier addresses (half of them within 50 rows, so in the same batch,
  half anywhere earlier, so usually in an earlier batch; a third upper-cased, a third
  padded with spaces); names in mixed case, some with extra spaces or a comma (quoted);
- for each database, migrates one throwaway database once (PostgreSQL:
  ``signalpost_bench_import_<pid>_template`` on ``BENCH_PG_URL``, default
  ``postgres://postgres@127.0.0.1:5432/postgres``; SQLite: a file in a temp dir) and
  adds a single opt-in newsletter ``bench``;
- for each file, starts from a fresh copy of it (``CREATE DATABASE
  signalpost_bench_import_<pid> TEMPLATE ...``, or a copy of the SQLite file) and runs the
  real command as a subprocess, ``manage.py import_subscribers FILE --newsletter bench``,
  with ``DEBUG=0`` (as in production: no query log) and the real receivers of
  ``subscribers_imported`` connected;
- measures the command's wall time (Python and Django start-up included: the
  ``header only`` row shows what start-up alone costs), its peak RSS and CPU time (the
  rusage of exactly that process, taken by ``import_support/rusage.py``, which starts it),
  on PostgreSQL the CPU time of the server backend serving it (sampled from ``/proc``),
  and the rate over the first and the last tenth of the file (from the command's
  progress lines, one per batch of 5,000 rows), which shows whether it slows down as the
  tables grow;
- checks the database afterwards: profiles, active imported subscriptions,
  ``Profile.subscriptions`` rows and ``imported`` activity rows must each equal the unique
  valid addresses, and the command's counts of duplicates and rejected rows (and its
  rejected-rows report) must match the file;
- stops an import that runs longer than ``--time-limit`` seconds (default 200, so that the
  whole benchmark stays near 10 minutes; ``0``: no limit) and reports the rate it had
  reached, marked *stopped*; the check is then that the four counts agree with each other
  and with the last batch the command reported (each batch is one transaction);
- drops every database, deletes the temp dir.

``--profile`` adds one more import of the smaller file per database under cProfile
(``python -m cProfile -o ... manage.py import_subscribers ...``) and prints where its time
goes. ``--repo PATH`` runs ``manage.py`` from another checkout (a worktree with a proposed
change) with this same script.

``--formats native,mailchimp`` (the default) runs each size twice: the native file above,
and a Mailchimp audience export of the same number of rows as Mailchimp writes it, three
files in one command (``subscribed_...`` with the same invalid and duplicate rows, its
merge fields, opt-in and confirm times and IPs, TAGS; ``unsubscribed_...`` and
``cleaned_...`` with 5% of the rows each, new addresses, which go on the suppression list).
Its check adds the suppression rows.

Goals (from the issues): at least 50,000 rows a second on PostgreSQL; memory flat in the
file's size (the peak RSS of the larger file within 10 MiB of the smaller one's); the
Mailchimp export at least 90% of the native file's rows a second.
"""

import argparse
import csv
import datetime
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from harness import (
    PG_URL,
    pg_connect,
    pg_url_for,
    proc_cpu_seconds,
    run,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PYTHON = Path(sys.executable)
SLUG = "bench"
RATE_GOAL = 50_000  # rows a second, PostgreSQL
FLAT_GOAL_MIB = 10.0  # peak RSS growth allowed from the smaller file to the larger one
INVALID_SHARE = 0.01
DUPLICATE_SHARE = 0.01
SIZES = (100_000, 1_000_000)
TIME_LIMIT = 200.0  # seconds per import; the full benchmark stays near 10 minutes
BATCH_SIZE = 5000  # signalpost.newsletters.imports.BATCH_SIZE
QUICK_SIZES = (10_000, 100_000)
SUMMARY = re.compile(
    r"^(\d+) rows: (\d+) imported, (\d+) duplicates, (\d+) rejected.* in ([\d.]+)s\.$"
)
SUPPRESSED = re.compile(r", (\d+) suppressed")
PROGRESS = re.compile(r"% (\d+) rows: (\d+) imported, (\d+) duplicates, (\d+) rejected")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jon"]
LAST = ["Smith", "Okafor", "Müller", "Nguyen", "Rossi", "García", "Kowalski", "Tanaka", "Lee"]
ASCII_LETTERS = str.maketrans("éüí", "eui")
DOMAINS = [
    "example.com",
    "Example.org",
    "mail.example.net",
    "post.example.co.uk",
    "example.io",
    "news.example.de",
    "EXAMPLE.fr",
    "list.example.edu",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SIZES[0]:,} and {QUICK_SIZES[1]:,} rows"
    )
    parser.add_argument("--sizes", help="comma-separated row counts (overrides --quick)")
    parser.add_argument(
        "--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite"
    )
    parser.add_argument(
        "--writers",
        default="1,2",
        help="comma-separated writer counts to run on PostgreSQL, side by side (default 1,2)",
    )
    parser.add_argument(
        "--formats",
        default="native,mailchimp",
        help="comma-separated: native (email,name), mailchimp (an audience's three files, "
        f"{SUPPRESSED_SHARE:.0%} unsubscribed or cleaned); default both",
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=TIME_LIMIT,
        help=f"stop an import after this many seconds (default {TIME_LIMIT:.0f}; 0: no limit)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more import of the smaller file per database, under cProfile",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO_ROOT,
        help="run manage.py from this checkout (e.g. a worktree with a proposed change)",
    )
    args = parser.parse_args()
    if args.sizes:
        args.sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    else:
        args.sizes = list(QUICK_SIZES if args.quick else SIZES)
    args.writers = [int(count) for count in args.writers.split(",") if count.strip()]
    if not args.writers or not all(1 <= count <= 8 for count in args.writers):
        parser.error("--writers: counts from 1 to 8")
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    if not args.formats or set(args.formats) - set(FORMAT_LABELS):
        parser.error("--formats: native, mailchimp")
    args.repo = args.repo.resolve()
    args.databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    unknown = set(args.databases) - {"postgresql", "sqlite"}
    if unknown:
        parser.error(f"unknown database(s): {', '.join(sorted(unknown))}")
    return args


# --- the file -----------------------------------------------------------------------------


def ascii_name(name):
    return name.translate(ASCII_LETTERS)


def invalid_email(rng, number):
    kind = number % 7
    if kind == 0:
        return f"user{number}.example.com"
    if kind == 1:
        return f"user{number}@"
    if kind == 2:
        return f"user {number}@example.com"
    if kind == 3:
        return f"user{number}@example..com"
    if kind == 4:
        return f"user{number}@-example.com"
    if kind == 5:
        return "x" * 290 + f"{number}@example.com"
    return ""


def people(rows, *, seed, counts):
    """Yield ``(email, first, last, name)`` for ``rows`` rows, about 1% invalid and 1%
    duplicates (see the module's docstring); ``counts`` gets "valid", "invalid" and
    "duplicates"."""
    rng = random.Random(seed)
    valid = []
    invalid = duplicates = 0
    for number in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        draw = rng.random()
        if draw < INVALID_SHARE:
            invalid += 1
            email = invalid_email(rng, number)
        elif draw < INVALID_SHARE + DUPLICATE_SHARE and valid:
            duplicates += 1
            if rng.random() < 0.5:
                email = valid[-rng.randint(1, min(50, len(valid)))]
            else:
                email = valid[rng.randrange(len(valid))]
            variant = rng.randrange(3)
            if variant == 0:
                email = email.upper()
            elif variant == 1:
                email = f"  {email} "
        else:
            email = f"{ascii_name(first)}.{ascii_name(last)}{number}@{rng.choice(DOMAINS)}"
            valid.append(email)
        if number % 10 == 3:
            name = f"  {first}   {last} "
        elif number % 10 == 7:
            name = f"{last}, {first}"
        yield email, first, last, name
    counts.update(valid=len(valid), invalid=invalid, duplicates=duplicates)


def csv_generate(path, rows, *, seed):
    """Write ``rows`` data rows to ``path``; return what an import of it must report."""
    counts = {}
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["email", "name"])
        chunk = []
        for email, _, _, name in people(rows, seed=seed, counts=counts):
            chunk.append((email, name))
            if len(chunk) >= 10_000:
                writer.writerows(chunk)
                chunk.clear()
        writer.writerows(chunk)
    return {
        "rows": rows,
        "imported": counts["valid"],
        "duplicates": counts["duplicates"],
        "rejected": counts["invalid"],
        "suppressed": 0,
        "bytes": path.stat().st_size,
        "paths": [path],
    }


# A Mailchimp audience export: one file per status, each with the merge fields (here First
# Name, Last Name and Company) and Mailchimp's own columns; the unsubscribed and cleaned
# files add theirs. Times are UTC, TAGS a list of quoted names.
MAILCHIMP_COLUMNS = [
    "Email Address",
    "First Name",
    "Last Name",
    "Company",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]
MAILCHIMP_UNSUBSCRIBED = [
    "UNSUB_TIME",
    "UNSUB_CAMPAIGN_TITLE",
    "UNSUB_CAMPAIGN_ID",
    "UNSUB_REASON",
    "UNSUB_REASON_OTHER",
]
MAILCHIMP_CLEANED = ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"]
SUPPRESSED_SHARE = 0.10  # unsubscribed and cleaned rows, half each
FORMAT_LABELS = {"native": "", "mailchimp": ", Mailchimp"}
FORMAT_GOAL = 0.90  # the Mailchimp export's rate, at least this share of the native file's


def _mailchimp_row(number, email, first, last):
    moment = (
        f"2024-{1 + number % 12:02d}-{1 + number % 28:02d} {number % 24:02d}:{number % 60:02d}:07"
    )
    return [
        email,
        first,
        last,
        "Analytical Engines, Ltd" if number % 3 == 0 else "",
        "2",
        moment,
        f"203.0.{number % 256}.{(number // 256) % 256}",
        moment,
        f"198.51.{number % 256}.{(number // 7) % 256}",
        "51.5",
        "-0.12",
        "0",
        "1",
        "Europe/London",
        "GB",
        "ENG",
        moment,
        str(50_000_000 + number),
        f"{number:010x}",
        "",
        '"VIP","Early readers"' if number % 5 == 0 else "",
    ]


def mailchimp_generate(directory, rows, *, seed):
    """Write a Mailchimp audience of ``rows`` rows as its three files (subscribed, with the
    same invalid and duplicate rows as the native file; 5% unsubscribed, 5% cleaned, new
    addresses); return what importing them must report."""
    suppressed = int(rows * SUPPRESSED_SHARE)
    subscribed_rows = rows - suppressed
    counts = {}
    paths = [
        directory / f"{kind}_members_export_{rows}.csv"
        for kind in ("subscribed", "unsubscribed", "cleaned")
    ]
    with paths[0].open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)  # Mailchimp ends lines with CRLF
        writer.writerow(MAILCHIMP_COLUMNS)
        chunk = []
        for number, (email, first, last, _) in enumerate(
            people(subscribed_rows, seed=seed, counts=counts)
        ):
            chunk.append(_mailchimp_row(number, email, first, last))
            if len(chunk) >= 10_000:
                writer.writerows(chunk)
                chunk.clear()
        writer.writerows(chunk)
    for path, extra, size, start in (
        (paths[1], MAILCHIMP_UNSUBSCRIBED, suppressed // 2, 0),
        (paths[2], MAILCHIMP_CLEANED, suppressed - suppressed // 2, suppressed // 2),
    ):
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(MAILCHIMP_COLUMNS + extra)
            for number in range(start, start + size):
                row = _mailchimp_row(number, f"gone{number}@example.org", "Gone", "Away")
                if extra is MAILCHIMP_UNSUBSCRIBED:
                    row += [row[16], "March issue", "a1b2c3", "No longer interested", ""]
                else:
                    row += [row[16], "April issue", "d4e5f6"]
                writer.writerow(row)
    return {
        "rows": rows,
        "imported": counts["valid"],
        "duplicates": counts["duplicates"],
        "rejected": counts["invalid"],
        "suppressed": suppressed,
        "bytes": sum(path.stat().st_size for path in paths),
        "paths": paths,
    }


# --- the databases ------------------------------------------------------------------------


def command_env(database_url):
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, DEBUG="0", PYTHONUNBUFFERED="1")
    env.pop("SIGNALPOST_MODE", None)
    return env


def database_prepare(database_url, repo):
    """Migrate the database at ``database_url`` and add the newsletter the import targets."""
    env = command_env(database_url)
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=repo, what="migrate")
    run(
        [
            PYTHON,
            "manage.py",
            "shell",
            "-c",
            "from signalpost.newsletters.models import Newsletter; "
            f"Newsletter.objects.create(slug={SLUG!r}, name='Bench', opt_in='single')",
        ],
        env=env,
        cwd=repo,
        what="creating the newsletter",
    )


class PostgreSQL:
    label = "PostgreSQL"

    def __init__(self):
        self.name = f"signalpost_bench_import_{os.getpid()}"
        self.template = f"{self.name}_template"
        self.admin = pg_connect(urlsplit(PG_URL).path.lstrip("/") or "postgres")
        self.version = self.admin.execute("SHOW server_version").fetchone()[0].split()[0]

    def setup(self, repo):
        self.admin.execute(f'CREATE DATABASE "{self.template}"')
        database_prepare(pg_url_for(self.template), repo)

    def fresh(self):
        """Return the URL of a fresh copy of the migrated template."""
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')
        return pg_url_for(self.name)

    def backend_pids(self):
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.name],
        ).fetchall()
        return [row[0] for row in rows]

    def count(self, sql):
        with pg_connect(self.name) as connection:
            return connection.execute(sql).fetchone()[0]

    def cleanup(self):
        for name in (self.name, self.template):
            try:
                self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as error:
                print(f"could not drop {name}: {error}", file=sys.stderr)
        self.admin.close()


class SQLite:
    label = "SQLite"

    def __init__(self, workdir):
        self.template = workdir / "template.sqlite3"
        self.path = workdir / "run.sqlite3"
        self.version = sqlite3.sqlite_version

    def setup(self, repo):
        database_prepare(f"sqlite:///{self.template}", repo)
        # Fold the WAL into the file so that copying the file copies everything.
        with sqlite3.connect(self.template) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def fresh(self):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)
        return f"sqlite:///{self.path}"

    def backend_pids(self):
        return []

    def count(self, sql):
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(sql).fetchone()[0]
        finally:
            connection.close()

    def cleanup(self):
        pass


CHECKS = {
    "profiles": "SELECT count(*) FROM accounts_profile",
    "subscriptions": (
        "SELECT count(*) FROM newsletters_subscription s "
        "JOIN newsletters_newsletter n ON n.id = s.newsletter_id "
        f"WHERE n.slug = '{SLUG}' AND s.status = 'active' AND s.source = 'import'"
    ),
    "profile.subscriptions": "SELECT count(*) FROM accounts_profile_subscriptions",
    "activity": "SELECT count(*) FROM activity_activity WHERE event = 'imported'",
}
SUPPRESSIONS = "SELECT count(*) FROM newsletters_suppression"


# --- one measured run ---------------------------------------------------------------------


def import_run(database, paths, workdir, repo, *, time_limit, writers, profile_path=None):
    """Run the command on ``paths`` (one file, or a Mailchimp audience's three) on a fresh
    database; return its measurements."""
    url = database.fresh()
    report_path = workdir / "rejected.csv"
    report_path.unlink(missing_ok=True)
    # One file: its report where the benchmark says; several: FILE.rejected.csv each.
    report_paths = (
        [report_path]
        if len(paths) == 1
        else [path.with_suffix(path.suffix + ".rejected.csv") for path in paths]
    )
    for path in report_paths:
        path.unlink(missing_ok=True)
    report_option = ["--report", report_path] if len(paths) == 1 else []
    usage_path = workdir / "rusage.json"
    usage_path.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    # The CPU seconds of each PostgreSQL backend serving the command (one per writer).
    backend_cpu = {}
    profiler = ["-m", "cProfile", "-o", profile_path] if profile_path else []
    process = subprocess.Popen(
        [
            PYTHON,
            BENCH_DIR / "import_support" / "rusage.py",
            usage_path,
            PYTHON,
            *profiler,
            "manage.py",
            "import_subscribers",
            *paths,
            "--newsletter",
            SLUG,
            *report_option,
            "--writers",
            str(writers),
        ],
        cwd=repo,
        env=command_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = time.perf_counter()
    done = threading.Event()
    stopped = threading.Event()

    def watch():
        while not done.wait(0.2):
            if time_limit and time.perf_counter() - started > time_limit and not stopped.is_set():
                stopped.set()
                process.terminate()  # rusage.py passes it on to the command
            for pid in database.backend_pids():
                # A backend exits with the command (or its writer): keep its last reading.
                cpu = proc_cpu_seconds(pid)
                if cpu is not None:
                    backend_cpu[pid] = cpu

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # (seconds since start, rows, imported) for each progress line, as it arrives.
    lines, progress = [], []
    for line in process.stdout:
        lines.append(line)
        match = PROGRESS.search(line)
        if match:
            progress.append(
                (time.perf_counter() - started, int(match.group(1)), int(match.group(2)))
            )
    process.wait()
    done.set()
    watcher.join()
    usage = json.loads(usage_path.read_text()) if usage_path.exists() else None
    output = ANSI.sub("", "".join(lines))
    if usage is None or (process.returncode != 0 and not stopped.is_set()):
        raise SystemExit(f"import_subscribers failed ({process.returncode}):\n{output[-3000:]}")
    reported = None
    for line in output.splitlines():
        match = SUMMARY.match(line.strip())
        if match:
            keys = ("rows", "imported", "duplicates", "rejected")
            reported = dict(zip(keys, map(int, match.groups()[:4]), strict=True))
            suppressed = SUPPRESSED.search(line)
            reported["suppressed"] = int(suppressed.group(1)) if suppressed else 0
    if reported is None and "The file has no rows." in output:
        reported = {"rows": 0, "imported": 0, "duplicates": 0, "rejected": 0, "suppressed": 0}
    if reported is None and not stopped.is_set():
        raise SystemExit(f"no summary line in the command's output:\n{output[-3000:]}")
    counts = {name: database.count(sql) for name, sql in CHECKS.items()}
    suppressions = database.count(SUPPRESSIONS)
    report_rows = 0
    for path in report_paths:
        if path.exists():
            with path.open(newline="") as file:
                report_rows += sum(1 for _ in csv.reader(file)) - 1
    return {
        "wall": usage["wall"],
        "stopped": stopped.is_set(),
        "rss_mib": usage["maxrss_kib"] / 1024,
        "cpu": usage["user"] + usage["system"],
        "backend_cpu": sum(backend_cpu.values()) if backend_cpu else None,
        "progress": progress,
        "reported": reported,
        "counts": counts,
        "suppressions": suppressions,
        "report_rows": report_rows,
        "load": load,
    }


def problems_of(result, expected):
    problems = []
    counts = result["counts"]
    if result["stopped"]:
        # Each batch is one transaction: whatever was committed is complete in all four
        # tables, and is the last batch the command reported (or, stopped between the
        # commit and the progress line, one more).
        last = result["progress"][-1][2] if result["progress"] else 0
        if len(set(counts.values())) != 1:
            problems.append(f"the tables disagree: {counts}")
        if not last <= counts["profiles"] <= last + BATCH_SIZE:
            problems.append(f"{counts['profiles']} profiles, the command reported {last}")
        return problems
    reported = result["reported"]
    if result["suppressions"] != expected["suppressed"]:
        problems.append(
            f"{result['suppressions']} suppression rows, expected {expected['suppressed']}"
        )
    for key in ("rows", "imported", "duplicates", "rejected", "suppressed"):
        if reported[key] != expected[key]:
            problems.append(f"command says {key}={reported[key]}, file has {expected[key]}")
    for name, value in counts.items():
        if value != expected["imported"]:
            problems.append(f"{value} {name} rows, expected {expected['imported']}")
    if result["report_rows"] != expected["rejected"]:
        problems.append(
            f"{result['report_rows']} rows in the report, expected {expected['rejected']}"
        )
    return problems


def rates_wall(result, rows):
    done, seconds = rows_and_seconds(result, rows)
    return done / seconds


def rows_and_seconds(result, rows):
    """Rows imported and the seconds they took: the whole file, or up to the last batch
    reported before the time limit stopped the command."""
    if result["stopped"]:
        if not result["progress"]:
            return 0, result["wall"]
        seconds, done, _ = result["progress"][-1]
        return done, seconds
    return rows, result["wall"]


# --- profile ------------------------------------------------------------------------------

# (label, file name ending, function name): what the breakdown under cProfile shows.
PROFILED = [
    ("subscribers_import, the whole import", "newsletters/imports.py", "subscribers_import"),
    ("  csv_rows: decode and parse", "newsletters/imports.py", "csv_rows"),
    ("  row_check: validate a row", "newsletters/imports.py", "row_check"),
    ("    email_normalize (validate_email)", "accounts/services.py", "email_normalize"),
    ("    name_clean", "accounts/services.py", "name_clean"),
    ("  batch_write: one batch's writes", "newsletters/imports.py", "batch_write"),
    ("    batch_write_postgresql", "newsletters/imports.py", "batch_write_postgresql"),
    ("    batch_write_portable", "newsletters/writes.py", "batch_write_portable"),
    ("    batch_write_sql", "newsletters/writes.py", "batch_write_sql"),
    ("    receiver profiles_add_imported", "newsletters/receivers.py", "profiles_add_imported"),
    ("    receiver activity_record_imported", "activity/receivers.py", "activity_record_imported"),
    ("    Model.__init__ (ORM objects)", "django/db/models/base.py", "__init__"),
    ("  commit, one per batch", "django/db/backends/base/base.py", "commit"),
    ("  (writes + commits: waiting for PostgreSQL)", "psycopg/connection.py", "wait"),
]


def profiles_run(database, files, workdir, args):
    """Import the smaller file of each format once more under cProfile, one writer;
    return each run's summary."""
    rows = min(args.sizes)
    summaries = []
    for kind in args.formats:
        profile_path = workdir / f"{type(database).__name__}-{kind}.prof"
        import_run(
            database,
            files[(kind, rows)][0],
            workdir,
            args.repo,
            time_limit=0,
            writers=1,
            profile_path=profile_path,
        )
        label = database.label + FORMAT_LABELS[kind]
        summaries.append(profile_summary(label, profile_path, rows))
    return summaries


# The functions that take most of their own time, listed after the breakdown.
PROFILE_TOP = 15


def profile_summary(label, path, rows):
    import pstats

    stats = pstats.Stats(str(path)).stats
    lines = [f"{label}, {rows:,} rows under cProfile (cumulative seconds, µs a row):"]
    for title, filename, function in PROFILED:
        total = sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if name == function and file.endswith(filename)
        )
        if total >= 0.005:
            lines.append(f"  {title:44} {total:7.2f} s {total / rows * 1e6:8.1f} µs")
    lines.append(f"  the {PROFILE_TOP} functions with the most time of their own:")
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:PROFILE_TOP]
    for (file, line, name), entry in top:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line} {name}"
        lines.append(f"    {where[-60:]:60} {entry[2]:7.2f} s {entry[1]:>9,} calls")
    return "\n".join(lines)


# --- the table ----------------------------------------------------------------------------


def fmt_rate(rows, seconds):
    return f"{rows / seconds:,.0f}" if seconds else "-"


def rates_early_late(progress, rows):
    """Rows a second over the first and the last tenth of the file, from the progress lines
    (one per batch): does the import slow down as the tables grow?"""
    if len(progress) < 5:
        return "-"

    def rate(first, last):
        (t0, r0, _), (t1, r1, _) = first, last
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0

    early = next(i for i, (_, done, _) in enumerate(progress) if done >= rows / 10)
    late = next((i for i, (_, done, _) in enumerate(progress) if done >= rows * 9 / 10), None)
    early_rate = rate(progress[0], progress[max(early, 1)])
    if late is None:  # stopped before the last tenth: its own last tenth
        late = len(progress) - max(2, len(progress) // 10)
    late_rate = rate(progress[min(late, len(progress) - 2)], progress[-1])
    return f"{early_rate:,.0f} → {late_rate:,.0f}"


def table_print(results):
    header = (
        "| Database | Rows in file (MB) | Imported / duplicates / rejected | Wall s | "
        "Rows/s (wall) | Rows/s, first → last tenth | Peak RSS MiB | CPU s, command / server "
        "| Check |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for (label, rows), result in results.items():
        expected = result["expected"]
        reported = result["reported"]
        done, seconds = rows_and_seconds(result, rows)
        if rows == 0:
            size, outcome, rate = "header only", "-", "-"
        elif result["stopped"]:
            size = f"{rows:,} ({expected['bytes'] / 1e6:.1f})"
            imported = result["progress"][-1][2] if result["progress"] else 0
            outcome = f"stopped at {done:,} rows, {imported:,} imported"
            rate = f"**{fmt_rate(done, seconds)}** (first {done:,})"
        else:
            size = f"{rows:,} ({expected['bytes'] / 1e6:.1f})"
            outcome = (
                f"{reported['imported']:,} / {reported['duplicates']:,} / {reported['rejected']:,}"
                + (f" (+ {reported['suppressed']:,} suppressed)" if reported["suppressed"] else "")
            )
            rate = f"**{fmt_rate(rows, seconds)}**"
        server = f"{result['backend_cpu']:.1f}" if result["backend_cpu"] is not None else "-"
        print(
            f"| {label} | {size} | {outcome} | {result['wall']:.1f} | {rate} | "
            f"{rates_early_late(result['progress'], done)} | "
            f"{result['rss_mib']:.1f} | {result['cpu']:.1f} / {server} | "
            f"{'ok' if not result['problems'] else 'FAILED'} |"
        )
    print()
    print(
        "Wall: `manage.py import_subscribers` from exec to exit (Python and Django start-up "
        "included: see the header-only rows). First → last tenth: rows a second over the first "
        "and the last 10% of the rows imported, from the command's progress lines. Server CPU: "
        "the PostgreSQL backends serving the command (one per writer), summed."
    )


def goals_print(results, sizes):
    print()
    big = max(sizes)
    small = min(sizes)
    for (label, rows), result in results.items():
        native = (label.removesuffix(FORMAT_LABELS["mailchimp"]), rows)
        if label == native[0] or native not in results or not rows:
            continue
        rate = rates_wall(result, rows)
        native_rate = rates_wall(results[native], rows)
        ratio = rate / native_rate
        print(
            f"Goal Mailchimp >= {FORMAT_GOAL:.0%} of native ({label}, {rows:,} rows): "
            f"{rate:,.0f} vs {native_rate:,.0f} rows/s, {ratio:.0%}: "
            f"{'met' if ratio >= FORMAT_GOAL else 'missed'}."
        )
    for (label, rows), result in results.items():
        if label.startswith("PostgreSQL") and rows == big:
            done, seconds = rows_and_seconds(result, rows)
            rate = done / seconds
            verdict = "met" if rate >= RATE_GOAL else "missed"
            what = f"first {done:,} of {rows:,} rows, stopped" if result["stopped"] else "wall"
            print(
                f"Goal >= {RATE_GOAL:,} rows/s on PostgreSQL at {rows:,} rows ({label}): "
                f"{rate:,.0f} rows/s ({what}): {verdict}."
            )
    if big == small:
        return
    for label in dict.fromkeys(label for label, _ in results):
        if (label, big) not in results or (label, small) not in results:
            continue
        large, little = results[(label, big)], results[(label, small)]
        growth = large["rss_mib"] - little["rss_mib"]
        verdict = "met" if growth <= FLAT_GOAL_MIB else "missed"
        upto = f" (stopped at {large['progress'][-1][1]:,})" if large["stopped"] else ""
        print(
            f"Goal flat memory on {label}: peak RSS {little['rss_mib']:.1f} MiB at {small:,} "
            f"rows, {large['rss_mib']:.1f} MiB at {big:,} rows{upto}: {growth:+.1f} MiB, "
            f"{verdict} (limit +{FLAT_GOAL_MIB:.0f} MiB)."
        )


def main():
    args = parse_args()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="signalpost-bench-import-"))
    databases = []
    results = {}
    profiles = []
    failed = False
    try:
        # (format, rows): (paths, expected). Native: the header-only file too (start-up).
        files = {}
        for kind in args.formats:
            for rows in (
                [0, *sorted(set(args.sizes))] if kind == "native" else sorted(set(args.sizes))
            ):
                t0 = time.monotonic()
                if kind == "native":
                    path = workdir / f"subscribers-{rows}.csv"
                    expected = csv_generate(path, rows, seed=args.seed)
                else:
                    expected = mailchimp_generate(workdir, rows, seed=args.seed)
                files[(kind, rows)] = (expected["paths"], expected)
                if rows:
                    print(
                        f"generated {kind} {rows:,} rows: {expected['bytes'] / 1e6:.1f} MB "
                        f"in {time.monotonic() - t0:.1f} s",
                        flush=True,
                    )
        for name in args.databases:
            database = PostgreSQL() if name == "postgresql" else SQLite(workdir)
            databases.append(database)
            database.label = f"{database.label} {database.version}"
            t0 = time.monotonic()
            database.setup(args.repo)
            print(f"{database.label}: migrated in {time.monotonic() - t0:.1f} s", flush=True)
            # SQLite writes with one connection whatever --writers says.
            for writers in args.writers if name == "postgresql" else [1]:
                base_label = database.label
                if name == "postgresql":
                    base_label += f", {writers} writer{'s' if writers > 1 else ''}"
                for (kind, rows), (paths, expected) in files.items():
                    label = base_label + FORMAT_LABELS[kind]
                    result = import_run(
                        database,
                        paths,
                        workdir,
                        args.repo,
                        time_limit=args.time_limit,
                        writers=writers,
                    )
                    result["expected"] = expected
                    result["problems"] = problems_of(result, expected)
                    results[(label, rows)] = result
                    problems = "; ".join(result["problems"])
                    print(
                        f"{label}, {rows:,} rows: {result['wall']:.1f} s wall"
                        + (" (stopped: time limit)" if result["stopped"] else "")
                        + f", peak RSS {result['rss_mib']:.1f} MiB, "
                        + f"load before {result['load']:.2f}"
                        + (f"; PROBLEMS: {problems}" if problems else ""),
                        flush=True,
                    )
                    failed = failed or bool(problems)
            if args.profile:
                profiles += profiles_run(database, files, workdir, args)
    finally:
        for database in databases:
            database.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"{datetime.date.today().isoformat()}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"total {time.monotonic() - started:.0f} s"
        + (f", code from {args.repo}" if args.repo != REPO_ROOT else "")
    )
    print()
    table_print(results)
    goals_print(results, args.sizes)
    for summary in profiles:
        print()
        print(summary)
    if failed:
        print("\nSome checks FAILED: see above.")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
