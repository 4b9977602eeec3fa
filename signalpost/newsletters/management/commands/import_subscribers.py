import csv
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from signalpost.newsletters.django_newsletter import django_newsletter_import
from signalpost.newsletters.formats import FORMAT_NAMES
from signalpost.newsletters.imports import (
    WRITERS_MAX,
    ImportFileError,
    ImportReport,
    csv_open,
    subscribers_import,
)
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
        parser.add_argument(
            "files",
            nargs="*",
            metavar="FILE",
            help="The CSV file (UTF-8); several are imported in turn (a Mailchimp audience's "
            "subscribed, unsubscribed and cleaned files).",
        )
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

    def handle(self, *, files, newsletter, confirm, report, writers, **options):
        if options["from_django_newsletter"]:
            if files or newsletter or options["format"]:
                raise CommandError(
                    "--from-django-newsletter takes no file, --newsletter or --format: "
                    "it imports the database's own newsletters."
                )
            return self.from_django_newsletter(
                options["from_django_newsletter"], report=report, writers=writers
            )
        if not files or not newsletter:
            raise CommandError("Give a FILE and --newsletter SLUG (or --from-django-newsletter).")
        paths = [Path(file) for file in files]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"No such file: {path}")
        if report and len(paths) > 1:
            raise CommandError(
                "--report takes one file; with several, each gets FILE.rejected.csv."
            )
        target = Newsletter.objects.filter(slug=newsletter).first()
        if target is None:
            raise CommandError(f"No newsletter {newsletter!r}.")
        # Every file's header first: a file refused as a whole stops them all before any row.
        for path in paths:
            with path.open("rb") as binary:
                try:
                    csv_open(binary, format_name=options["format"])
                except ImportFileError as error:
                    raise CommandError(f"Cannot import {path}: {error}") from error
        started = time.monotonic()
        total = ImportReport()
        for path in paths:
            report_path = (
                Path(report) if report else path.with_suffix(path.suffix + ".rejected.csv")
            )
            result = self.import_file(
                path,
                target=target,
                confirm=confirm,
                report_path=report_path,
                writers=writers,
                format_name=options["format"],
                before=total,
                started=started,
            )
            if len(paths) > 1:
                self.stdout.write(f"{path}: {result.format}: {self.counts(result, report_path)}.")
            else:
                self.stdout.write(f"Format: {result.format}.")
            for name in ("rows", "imported", "duplicates", "rejected", "skipped", "suppressed"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        if total.rows == 0:
            self.stdout.write(self.style.WARNING("The file has no rows."))
        self.stdout.write(
            self.style.SUCCESS(
                self.counts(total, report_path if len(paths) == 1 else None)
                + f" in {time.monotonic() - started:.1f}s."
            )
        )

    @staticmethod
    def counts(result, report_path):
        return (
            f"{result.rows} rows: {result.imported} imported, {result.duplicates} duplicates, "
            f"{result.rejected} rejected"
            + (f", {result.skipped} skipped" if result.skipped else "")
            + (f", {result.suppressed} suppressed" if result.suppressed else "")
            + (
                f" (see {report_path})"
                if report_path and (result.rejected or result.skipped)
                else ""
            )
        )

    def import_file(
        self, path, *, target, confirm, report_path, writers, format_name, before, started
    ):
        """Import one file; its progress lines count on from ``before`` (earlier files)."""
        size = path.stat().st_size or 1
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
                rows = before.rows + progress.rows
                line = (
                    f"[{bar}] {fraction:6.1%} {rows} rows: "
                    f"{before.imported + progress.imported} imported, "
                    f"{before.duplicates + progress.duplicates} duplicates, "
                    f"{before.rejected + progress.rejected} rejected, "
                    f"{rows / elapsed:,.0f} rows/s"
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
                    format_name=format_name,
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
            raise CommandError(f"Cannot import {path}: {failed}") from failed
        if interactive:
            self.stdout.write("")
        if not result.rejected and not result.skipped:
            report_path.unlink(missing_ok=True)
        return result

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
