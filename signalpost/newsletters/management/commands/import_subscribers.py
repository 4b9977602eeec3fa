import csv
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from signalpost.newsletters.django_newsletter import django_newsletter_import
from signalpost.newsletters.formats import FORMAT_NAMES
from signalpost.newsletters.imports import WRITERS_MAX, ImportFileError, subscribers_import
from signalpost.newsletters.models import Newsletter


class Command(BaseCommand):
    help = (
        "Import subscribers from a CSV file: Signalpost's own columns (email; optional: name, "
        "consent_at as ISO 8601, consent_ip) or an export of Mailchimp, Substack, Buttondown "
        "or listmonk, recognised by its columns (or named with --format). Or, with "
        "--from-django-newsletter URL, every newsletter and subscription of a django-newsletter "
        "database. Streams any size of file in batches; existing subscriptions are left alone; "
        "unsubscribed, cleaned, bounced and complained addresses go on the suppression list; "
        "rejected and skipped rows go to a report. Emails nobody unless --confirm."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="The CSV file (UTF-8).")
        parser.add_argument("--newsletter", help="The newsletter's slug (with a file).")
        parser.add_argument(
            "--format",
            choices=FORMAT_NAMES,
            help="The file's format (default: recognised from its columns).",
        )
        parser.add_argument(
            "--from-django-newsletter",
            metavar="DATABASE_URL",
            help="Import a django-newsletter site's database (sqlite:///path or "
            "postgres://...): its newsletters and their subscriptions.",
        )
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
        if options["from_django_newsletter"]:
            if file or newsletter or options["format"]:
                raise CommandError(
                    "--from-django-newsletter takes no file, --newsletter or --format: "
                    "it imports the database's own newsletters."
                )
            return self.from_django_newsletter(
                options["from_django_newsletter"], report=report, writers=writers
            )
        if not file or not newsletter:
            raise CommandError("Give a FILE and --newsletter SLUG (or --from-django-newsletter).")
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

            def on_skip(number, email, reason):
                rejected.writerow([number, email, f"skipped: {reason}"])

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
                    on_skip=on_skip,
                    on_progress=on_progress,
                    writers=writers,
                    format_name=options["format"],
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
        self.stdout.write(f"Format: {result.format}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.rows} rows: {result.imported} imported, {result.duplicates} duplicates, "
                f"{result.rejected} rejected"
                + (f", {result.skipped} skipped" if result.skipped else "")
                + (f", {result.suppressed} suppressed" if result.suppressed else "")
                + (f" (see {report_path})" if result.rejected or result.skipped else "")
                + f" in {time.monotonic() - started:.1f}s."
            )
        )
        if not result.rejected and not result.skipped:
            report_path.unlink(missing_ok=True)

    def from_django_newsletter(self, url, *, report, writers):
        """Every newsletter of a django-newsletter database, one summary line each."""
        report_path = Path(report or "django-newsletter.rejected.csv")
        started = time.monotonic()
        with report_path.open("w", newline="") as rejected_file:
            rejected = csv.writer(rejected_file)
            rejected.writerow(["subscription", "email", "reason"])
            try:
                results = django_newsletter_import(
                    url=url,
                    on_reject=lambda n, email, reason: rejected.writerow([n, email, reason]),
                    on_skip=lambda n, email, reason: rejected.writerow(
                        [n, email, f"skipped: {reason}"]
                    ),
                    writers=writers,
                )
            except ImportFileError as error:
                failed = error
            else:
                failed = None
        if failed is not None:
            report_path.unlink(missing_ok=True)
            raise CommandError(f"Cannot import from django-newsletter: {failed}") from failed
        self.stdout.write("Format: django-newsletter.")
        for target, created, result in results:
            self.stdout.write(
                f"{target.slug} ({'created' if created else 'existing'}): {result.rows} rows: "
                f"{result.imported} imported, {result.duplicates} duplicates, "
                f"{result.rejected} rejected, {result.skipped} skipped, "
                f"{result.suppressed} suppressed"
            )
        if not any(result.rejected or result.skipped for _, _, result in results):
            report_path.unlink(missing_ok=True)
        else:
            self.stdout.write(f"Rejected and skipped rows: {report_path}")
        self.stdout.write(
            self.style.SUCCESS(f"{len(results)} newsletters in {time.monotonic() - started:.1f}s.")
        )
