import csv
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from signalpost.newsletters.imports import WRITERS_MAX, ImportFileError, subscribers_import
from signalpost.newsletters.models import Newsletter


class Command(BaseCommand):
    help = (
        "Import subscribers from a CSV file with an 'email' column (optional: name, consent_at "
        "as ISO 8601, consent_ip). Streams any size of file in batches; existing subscriptions "
        "are left alone; rejected rows go to a report. Emails nobody unless --confirm."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8).")
        parser.add_argument("--newsletter", required=True, help="The newsletter's slug.")
        parser.add_argument(
            "--confirm",
            action="store_true",
            help="Import as pending and email each address a confirmation link (double opt-in).",
        )
        parser.add_argument(
            "--report", help="Where to write rejected rows (default: FILE.rejected.csv)."
        )
        parser.add_argument(
            "--writers",
            type=int,
            choices=range(1, WRITERS_MAX + 1),
            metavar="N",
            default=2,
            help=f"Connections writing batches in parallel on PostgreSQL, 1 to {WRITERS_MAX} "
            "(default: 2; SQLite always writes with one).",
        )

    def handle(self, *, file, newsletter, confirm, report, writers, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        target = Newsletter.objects.filter(slug=newsletter).first()
        if target is None:
            raise CommandError(f"No newsletter {newsletter!r}.")
        report_path = Path(report) if report else path.with_suffix(path.suffix + ".rejected.csv")
        size = path.stat().st_size or 1
        started = time.monotonic()
        interactive = self.stdout.isatty() if hasattr(self.stdout, "isatty") else False
        with path.open("rb") as binary, report_path.open("w", newline="") as rejected_file:
            rejected = csv.writer(rejected_file)
            rejected.writerow(["line", "email", "reason"])

            def on_reject(number, email, reason):
                rejected.writerow([number, email, reason])

            last_counts = [None]

            def on_progress(progress):
                counts = (progress.rows, progress.imported, progress.duplicates, progress.rejected)
                if counts == last_counts[0]:
                    return  # the closing call after the last batch: nothing new to say
                last_counts[0] = counts
                fraction = min(1.0, binary.tell() / size)
                elapsed = max(time.monotonic() - started, 1e-6)
                bar = "#" * int(30 * fraction) + "-" * (30 - int(30 * fraction))
                line = (
                    f"[{bar}] {fraction:6.1%} {progress.rows} rows: {progress.imported} imported, "
                    f"{progress.duplicates} duplicates, {progress.rejected} rejected, "
                    f"{progress.rows / elapsed:,.0f} rows/s"
                )
                if interactive:
                    self.stdout.write("\r" + line, ending="")
                    sys.stdout.flush()
                else:
                    self.stdout.write(line)

            try:
                result = subscribers_import(
                    binary=binary,
                    newsletter=target,
                    confirm=confirm,
                    on_reject=on_reject,
                    on_progress=on_progress,
                    writers=writers,
                )
            except ImportFileError as error:
                failed = error
            except KeyboardInterrupt:
                if interactive:
                    self.stdout.write("")
                raise CommandError(
                    "Interrupted. Each batch of rows was written whole or not at all: import "
                    "the same file again to finish (rows already imported count as duplicates)."
                ) from None
            else:
                failed = None
        if failed is not None:
            # The file was refused as a whole (no email column...): no report of rows.
            report_path.unlink(missing_ok=True)
            raise CommandError(f"Cannot import {file}: {failed}") from failed
        if interactive:
            self.stdout.write("")
        if result.rows == 0:
            self.stdout.write(self.style.WARNING("The file has no rows."))
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.rows} rows: {result.imported} imported, {result.duplicates} duplicates, "
                f"{result.rejected} rejected"
                + (f" (see {report_path})" if result.rejected else "")
                + f" in {time.monotonic() - started:.1f}s."
            )
        )
        if not result.rejected:
            report_path.unlink(missing_ok=True)
