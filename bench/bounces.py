"""process_bounces over a Maildir of mixed returned messages: messages/s and peak memory.

Run from the repository root::

    .venv/bin/python bench/bounces.py                  # 10,000 then 100,000 messages
    .venv/bin/python bench/bounces.py --sizes 20000    # one size

For each size: a fresh PostgreSQL database ``signalpost_bench_bounces_<pid>`` (migrated)
with one newsletter and a profile with an active subscription and a sent delivery for
every tenth message's recipient; a Maildir in a temporary directory holding that many
messages, mixed as a bounce mailbox is: 30 % hard DSNs (VERP-addressed to a delivery),
20 % soft DSNs (mailbox full), 20 % delay warnings, 10 % qmail-style bounces (no DSN, read
by flufl.bounce), 10 % auto-replies and 10 % garbage (questions people send to the bounce
address, left in the mailbox). Then ``manage.py process_bounces --mailbox maildir://...``
runs in a process of its own: the figures are its wall time (messages read / s) and its
peak RSS (``ru_maxrss`` of the child), which should not grow with the mailbox. The
database and the Maildir are dropped at the end.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO_ROOT, pg_connect, pg_url_for

sys.path.insert(0, str(REPO_ROOT))
from tests import bounce_samples as samples

PROJECT_PYTHON = Path(sys.executable)
BOUNCE_ADDRESS = "bounces@news.example.com"


def environment(db_name):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "signalpost.settings",
        "DEBUG": "0",
        "DATABASE_URL": pg_url_for(db_name),
        "BOUNCE_ADDRESS": BOUNCE_ADDRESS,
        "SECRET_KEY": "bench-bounces-" + "x" * 40,
        "LOG_LEVEL": "WARNING",
    }


SETUP = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.publishing.models import Delivery, Issue
from signalpost.mail import verp
count = int({count})
letter = Newsletter.objects.create(slug="weekly", name="Weekly", opt_in="single")
issue = Issue.objects.create(newsletter=letter, subject="S", slug="s", body_markdown="x")
profiles = Profile.objects.bulk_create(
    Profile(email=f"reader{{n}}@example.org") for n in range(count)
)
Subscription.objects.bulk_create(
    Subscription(profile=p, newsletter=letter, status="active", source="admin") for p in profiles
)
deliveries = Delivery.objects.bulk_create(
    Delivery(issue=issue, profile=p, email=p.email, status="sent", sent_at=timezone.now())
    for p in profiles
)
import sys
for d in deliveries:
    sys.stdout.write(f"{{d.email}} {{verp.return_path(kind='d', pk=d.pk)}}\\n")
"""


def maildir_fill(path, size, readers, rng):
    """Write ``size`` mixed returned messages into a new Maildir at ``path``."""
    for folder in ("new", "cur", "tmp"):
        (path / folder).mkdir(parents=True)
    kinds = (
        ["hard"] * 30
        + ["soft"] * 20
        + ["delayed"] * 20
        + ["qmail"] * 10
        + ["auto"] * 10
        + ["garbage"] * 10
    )
    for n in range(size):
        address, return_path = readers[n % len(readers)]
        kind = kinds[n % len(kinds)]
        if kind == "hard":
            raw = samples.dsn(to=return_path, recipient=address, n=n)
        elif kind == "soft":
            raw = samples.dsn(to=return_path, recipient=address, status="5.2.2", n=n)
        elif kind == "delayed":
            raw = samples.dsn(
                to=return_path, recipient=address, action="delayed", status="4.4.1", n=n
            )
        elif kind == "qmail":
            raw = samples.qmail(to=BOUNCE_ADDRESS, recipient=address, n=n)
        elif kind == "auto":
            raw = samples.auto_reply(to=return_path, recipient=address, n=n)
        else:
            raw = samples.garbage(to=BOUNCE_ADDRESS, n=n)
        (path / "new" / f"{n}.{rng.randrange(1 << 30)}.bench").write_bytes(raw)


def run_size(size):
    db_name = f"signalpost_bench_bounces_{os.getpid()}_{size}"
    with pg_connect() as connection:
        connection.execute(f'CREATE DATABASE "{db_name}"')
    workdir = Path(tempfile.mkdtemp(prefix="signalpost-bounces-"))
    try:
        env = environment(db_name)
        people = max(1, size // 10)
        setup = subprocess.run(
            [str(PROJECT_PYTHON), "-c", SETUP.format(count=people)],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        readers = [tuple(line.split()) for line in setup.stdout.splitlines()]
        began = time.monotonic()
        maildir_fill(workdir / "Maildir", size, readers, random.Random(size))
        filled = time.monotonic() - began
        began = time.monotonic()
        with tempfile.TemporaryFile("w+") as out:
            child = subprocess.Popen(
                [
                    str(PROJECT_PYTHON),
                    str(REPO_ROOT / "manage.py"),
                    "process_bounces",
                    f"--mailbox=maildir://{workdir / 'Maildir'}",
                ],
                env=env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
            # wait4: this child's own peak RSS, not the largest of every child so far.
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.monotonic() - began
            out.seek(0)
            output = out.read()
        if child.returncode != 0:
            raise SystemExit(f"process_bounces failed:\n{output[-3000:]}")
        peak_kb = usage.ru_maxrss
        left = len(os.listdir(workdir / "Maildir" / "new"))
        summary = output.splitlines()[0]
        return {
            "size": size,
            "seconds": seconds,
            "rate": size / seconds,
            "peak_mb": peak_kb / 1024,
            "left": left,
            "summary": summary,
            "fill_seconds": filled,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with pg_connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for size in [int(value) for value in args.sizes.split(",")]:
        print(f"{size:,} messages ...", end=" ", flush=True)
        row = run_size(size)
        rows.append(row)
        print(f"{row['rate']:,.0f} messages/s, peak {row['peak_mb']:.0f} MB", flush=True)
    print()
    print("| messages | seconds | messages/s | peak RSS of process_bounces, MB | left |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['seconds']:.1f} | {row['rate']:,.0f} | "
            f"{row['peak_mb']:.0f} | {row['left']:,} |"
        )
    for row in rows:
        print(f"{row['size']:,}: {row['summary']}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
