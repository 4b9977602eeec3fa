"""Importing subscribers from CSV: streamed in batches, validated row by row, set-based.

Memory stays flat whatever the file's size: rows are read, checked and written
one batch at a time, and rejected rows go to a callback (the command writes
them to a report file as they come). Nobody is emailed unless ``confirm`` asks
for double opt-in confirmations.
"""

import csv
import io
import queue
import re
import tempfile
import threading
import typing
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import EmailValidator
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from signalpost.accounts.services import EMAIL_MAX_LENGTH, email_normalize, name_clean
from signalpost.newsletters.cells import formula_escape, formula_unescape
from signalpost.newsletters.formats import (
    FORMATS,
    NATIVE_PLAIN_COLUMNS,
    format_recognise,
    formats_known,
    ip_normalize,
    native_mapper,
    native_row,
)
from signalpost.newsletters.models import SubscriberImport, Subscription
from signalpost.newsletters.suppressions import email_hash, suppressed_among, suppressions_add
from signalpost.newsletters.writes import (
    batches_written_concurrently,
    subscriptions_insert_imported,
)
from signalpost.signals import profile_tagged, subscribers_imported, subscription_requested

BATCH_SIZE = 5000
WRITERS_MAX = 8
# A batch that PostgreSQL chose as a deadlock's victim is written again (its transaction was
# rolled back whole); batches are sorted so that two writers should never deadlock.
DEADLOCK_ATTEMPTS = 3
DEADLOCK_SQLSTATE = "40P01"
FIELD_MAX_LENGTH = 10_000
Status = Subscription.Status


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no email column, not CSV)."""


@dataclass
class ImportReport:
    format: str = ""
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    suppressed: int = 0
    rejections: list = field(default_factory=list)
    skips: list = field(default_factory=list)
    rejections_kept: int = 100


def decoded_lines(binary):
    """Yield ``(line number, text)``; a line that is not UTF-8 yields ``None`` as text."""
    for number, raw in enumerate(binary, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            text = None
        yield number, text


def csv_open(binary, *, format_name=None):
    """Read the header of the CSV byte stream ``binary``; return ``(format, rows)``.

    ``format`` is the ``ImportFormat`` named by ``format_name``, or else the one its
    columns are recognised as, its ``map`` made for this file's columns; ``rows`` yields
    ``(line number, row or None, problem)``, a row being what that ``map`` takes: a dict
    of the columns (with ``email``), or for a format that maps lists of values
    (``ImportFormat.values_map``), the list of one value per column, then the address.
    Raises ``ImportFileError`` for a header that is not CSV, a named format
    whose columns are missing, or columns no format knows (naming what it found).
    """
    numbered = decoded_lines(binary)
    bad_lines = {}
    # The number of the line read last, and whether it ended with a line break (only the
    # file's last line can lack one: a row cut short there is a truncated file).
    current = [0, True]

    def text_lines():
        for number, text in numbered:
            if text is None:
                bad_lines[number] = True
                text = "\n"
            current[0] = number
            current[1] = text.endswith(("\n", "\r"))
            yield text

    csv.field_size_limit(FIELD_MAX_LENGTH)
    reader = csv.reader(text_lines())
    try:
        header = next(reader)
    except StopIteration:
        return FORMATS["signalpost"], iter(())
    except csv.Error as error:
        raise ImportFileError(f"the header is not CSV: {error}") from error
    if bad_lines.pop(1, False):
        raise ImportFileError(
            "the header is not UTF-8 (a Latin-1 or Windows file?): save it as UTF-8"
        )
    columns = [column.strip().lower() for column in header]
    found = ", ".join(c[:40] for c in columns[:30]) or "none"
    if format_name:
        if format_name not in FORMATS:
            raise ImportFileError(
                f"no format {format_name[:40]!r}; the formats known: {formats_known()}"
            )
        import_format = FORMATS[format_name]
        missing = import_format.missing(columns)
        if missing:
            raise ImportFileError(
                f"not a {import_format.label}: no column {', '.join(missing)}; found: {found}"
            )
    else:
        import_format = format_recognise(columns)
        if import_format is None:
            raise ImportFileError(
                f"no email column, and no format known has these columns (found: {found}); "
                f"the formats known: {formats_known()}"
            )
    email_column = next((c for c in import_format.email_columns if c in columns), "")
    values_map = import_format.values_map(columns)
    if values_map is not None:
        import_format = replace(import_format, map=values_map)
    elif import_format.name == "signalpost" and not NATIVE_PLAIN_COLUMNS.issuperset(columns):
        try:
            import_format = replace(import_format, map=native_mapper(columns))
        except ValidationError as error:
            raise ImportFileError(f"a column cannot be an attribute: {error.messages[0]}") from None
    rows = _csv_rows(
        reader, columns, email_column, current, bad_lines, as_values=values_map is not None
    )
    return import_format, rows


def row_email(row):
    """The address a row of ``csv_open`` has as it is in the file (for its rejection)."""
    if isinstance(row, dict):
        return row.get("email", "")
    return row[-1]


def _csv_rows(reader, columns, email_column, current, bad_lines, *, as_values=False):
    """The rows of ``csv_open``. With ``as_values``, each is the list of one value per
    column (a row with too few is padded with "", one with too many cut, as a dict of
    the columns reads them) and its address last."""
    width = len(columns)
    # The last occurrence of the column, as a dict of the columns has it.
    email_index = max((i for i, c in enumerate(columns) if c == email_column), default=width)
    while True:
        first_line = current[0] + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield current[0], None, f"not readable as CSV: {error}"
            continue
        number = current[0]
        if bad_lines.pop(number, False):
            yield number, None, "not UTF-8: save the file as UTF-8 and import this row again"
            continue
        if not any(value.strip() for value in values):
            continue
        if len(values) < width and not current[1]:
            yield (
                number,
                None,
                f"the file ends in the middle of this row ({len(values)} of {width} fields): "
                "was it cut short? Export it again and import this row again",
            )
            continue
        if not as_values:
            row = dict(zip(columns, values, strict=False))
            email = row["email"] = row.get(email_column, "")
        elif len(values) == width:
            row = values
            email = values[email_index] if email_index < width else ""
            row.append(email)
        else:
            by_column = dict(zip(columns, values, strict=False))
            row = [by_column.get(column, "") for column in columns]
            email = by_column.get(email_column, "")
            row.append(email)
        if "\n" in email:
            # A quoted field may span lines, but no address does: an unclosed quote.
            yield (
                first_line,
                None,
                (
                    f"a quote opened on line {first_line} is not closed: lines {first_line} "
                    f"to {number} were read as one row; close it and import them again"
                ),
            )
            continue
        yield number, row, None


def csv_rows(binary, *, format_name=None):
    """Yield ``(line number, row dict or None, problem)`` from a CSV byte stream."""
    return csv_open(binary, format_name=format_name)[1]


# The addresses nearly every file is made of: a dot-atom local part and Django's own domain
# pattern, lower case only (the address is lower-cased first) and without IGNORECASE, so it
# accepts a subset of what validate_email accepts. validate_email costs ~7 µs a row (three
# lazy regular expressions); this one match ~1 µs. Whatever it does not match goes through
# email_normalize, so results and error messages are validate_email's.
EMAIL_COMMON = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*@"
    + EmailValidator.hostname_re
    + EmailValidator.domain_re
    + EmailValidator.tld_no_fqdn_re
)


def email_check(raw_email):
    """``email_normalize(raw_email)``, with a quick path for common addresses."""
    email = (raw_email or "").strip().lower()
    # An international domain is stored in its IDNA form: email_normalize makes it.
    if len(email) <= EMAIL_MAX_LENGTH and email.isascii() and EMAIL_COMMON.fullmatch(email):
        return email
    return email_normalize(raw_email)


def row_check(row, *, consent_normalized=False):
    """Return ``(email, name, consent_at, consent_ip)`` for a row, or raise ``ValidationError``.

    ``consent_at`` may be text (ISO 8601) or already a ``datetime`` (a format made it);
    ``consent_normalized``: ``consent_at`` is an aware datetime or None and ``consent_ip``
    "" or normalised already (a format made them: ``ImportFormat.consent_normalized``).
    """
    email = email_check(formula_unescape(row.get("email", "").strip()))
    name = name_clean(formula_unescape((row.get("name") or "").strip()))
    if consent_normalized:
        return email, name, row.get("consent_at") or None, row.get("consent_ip") or None
    consent_at = row.get("consent_at") or None
    if isinstance(consent_at, str):
        text = consent_at.strip()
        consent_at = None
        if text:
            try:
                consent_at = datetime.fromisoformat(text)
            except ValueError as error:
                raise ValidationError(f"consent_at is not an ISO 8601 time: {text!r}") from error
    if consent_at is not None and timezone.is_naive(consent_at):
        consent_at = timezone.make_aware(consent_at)
    consent_ip = (row.get("consent_ip") or "").strip() or None
    if consent_ip:
        try:
            consent_ip = ip_normalize(consent_ip)
        except ValueError as error:
            raise ValidationError(f"consent_ip is not an IP address: {consent_ip!r}") from error
    return email, name, consent_at, consent_ip


def _mapped(row):
    return row


# A row on its way to a batch: what writes.ImportRow holds, then the row's line, and for an
# address the file says must not be mailed, the suppression reason and when.
ROW_LINE, ROW_SUPPRESS, ROW_SUPPRESSED_AT = 6, 7, 8


def subscribers_import(
    *,
    binary=None,
    newsletter,
    confirm=False,
    on_reject=None,
    on_skip=None,
    on_progress=None,
    batch_size=BATCH_SIZE,
    writers=1,
    format_name=None,
    rows=None,
    format_label=None,
):
    """Import the CSV in ``binary`` (a byte stream) into ``newsletter``; return an ``ImportReport``.

    The file's format is ``format_name`` or recognised from its columns
    (``formats.format_recognise``); another service's rows are mapped into the same
    batches as Signalpost's own. ``rows`` (``(line, native row dict, problem)``, already
    mapped) replaces ``binary`` for a source that is not a file (``django_newsletter``).

    Each batch is one transaction. Existing subscriptions are left as they are
    (counted as duplicates): an import never brings back someone who left, nor an
    address on the suppression list (skipped, with its line). Rows the file marks
    unsubscribed, cleaned, bounced or complained go on the suppression list instead
    (``suppressions.suppressions_add``). With ``writers`` above 1 on PostgreSQL, that
    many threads, each with its own connection, write batches while this one reads
    and checks the next ones; each address always goes to the same writer.
    """
    if not 1 <= writers <= WRITERS_MAX:
        raise ValueError(f"writers must be 1 to {WRITERS_MAX}, not {writers}")
    if rows is None:
        import_format, rows = csv_open(binary, format_name=format_name)
        # Signalpost's own columns need no mapping (others: attributes and tags).
        mapper = import_format.map if import_format.map is not native_row else None
        consent_normalized = import_format.consent_normalized
        report = ImportReport(format=import_format.name)
        source = f"import:{import_format.name}"
    else:
        mapper = _mapped
        consent_normalized = False
        report = ImportReport(format=format_label or "")
        source = f"import:{format_label}"

    def reject(number, email, reason):
        report.rejected += 1
        if len(report.rejections) < report.rejections_kept:
            report.rejections.append({"line": number, "email": email, "reason": reason})
        if on_reject:
            on_reject(number, email, reason)

    def skip(number, email, reason):
        report.skipped += 1
        if len(report.skips) < report.rejections_kept:
            report.skips.append({"line": number, "email": email, "reason": reason})
        if on_skip:
            on_skip(number, email, reason)

    def count(written):
        for rows_written, outcome in written:
            report.imported += outcome.imported
            report.suppressed += outcome.suppressed
            for number, email, reason in outcome.skipped:
                skip(number, email, reason)
            report.duplicates += (
                rows_written - outcome.imported - outcome.suppressed - len(outcome.skipped)
            )
            if on_progress:
                on_progress(report)

    def write(batch):
        return batch_write(rows=batch, newsletter=newsletter, confirm=confirm, source=source)

    # Inside the caller's transaction every row must be written in it: other connections
    # would commit on their own, and wait for that transaction's rows while it waits for them.
    own_transactions = not connection.in_atomic_block
    if own_transactions:
        # A batch is its own transaction, so one rolled back to break a deadlock (with another
        # writer, or with someone subscribing meanwhile) can simply be written again.
        write = batch_write_retrying(write)
    if writers > 1 and batches_written_concurrently() and own_transactions:
        writer = BatchWriterThreads(write=write, count=writers)
    else:
        writer = BatchWriterInline(write=write)
    # One batch being filled per writer. An address always goes to the same writer, which
    # writes its batches in file order, so two writers never insert the same new address at
    # once: when they did, the second's INSERT waited on the unique index for the first's
    # whole transaction to end, and the writers took turns instead of writing side by side
    # (bench/README.md, # Import). As with one writer, an address's first row is the one kept.
    batches = [[] for _ in range(writer.lanes)]
    seen_in_batches = [set() for _ in range(writer.lanes)]
    try:
        for number, row, problem in rows:
            report.rows += 1
            if problem:
                reject(number, "", problem)
                continue
            try:
                mapped = mapper(row) if mapper is not None else row
                checked = row_check(mapped, consent_normalized=consent_normalized)
            except ValidationError as error:
                reject(number, row_email(row)[:254], "; ".join(error.messages))
                continue
            if mapper is None:
                attributes = tags = suppress = suppressed_at = None
            else:
                if "skip" in mapped:
                    skip(number, checked[0], mapped["skip"])
                    continue
                attributes, tags = mapped.get("attributes"), mapped.get("tags")
                suppress, suppressed_at = mapped.get("suppress"), mapped.get("suppressed_at")
            # The hash of a str is the same throughout a process, which is all a lane needs.
            lane = hash(checked[0]) % writer.lanes
            seen_in_batch = seen_in_batches[lane]
            if checked[0] in seen_in_batch:
                report.duplicates += 1
                continue
            seen_in_batch.add(checked[0])
            batch = batches[lane]
            batch.append(
                (
                    *checked,
                    attributes,
                    tags,
                    number,
                    suppress,
                    suppressed_at,
                )
            )
            if len(batch) >= batch_size:
                count(writer.submit(batch, lane=lane))
                batches[lane] = []
                seen_in_batch.clear()
        for lane, batch in enumerate(batches):
            if batch:
                count(writer.submit(batch, lane=lane))
        count(writer.finish())
    finally:
        writer.close()
    if on_progress:
        on_progress(report)
    return report


class BatchWriterInline:
    """Writes each batch as it is submitted, in the caller's thread and connection."""

    lanes = 1

    def __init__(self, *, write):
        self.write = write

    def submit(self, rows, *, lane=0):
        """Write ``rows``; return ``[(rows, imported)]`` for the batches written by now."""
        return [(len(rows), self.write(rows))]

    def finish(self):
        return []

    def close(self):
        pass


class BatchWriterThreads:
    """Writes batches on ``count`` threads, each with its own database connection.

    Each thread is a lane: it writes the batches submitted to it, one at a time, in
    the order they were submitted. ``submit`` blocks while a batch already waits
    for that lane, so at most two batches a lane are in the threads' hands.
    Results are handed back in the order the batches were submitted, whatever
    their lanes. The first batch that fails stops the others from starting, and
    its exception is raised by ``submit`` or ``finish``.
    """

    def __init__(self, *, write, count):
        self.write = write
        self.lanes = count
        self.jobs = [queue.Queue(maxsize=1) for _ in range(count)]
        self.outcomes = {}
        self.outcome_ready = threading.Condition()
        self.submitted = 0
        self.returned = 0
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(
                target=self.work, args=(jobs,), name=f"import-writer-{number}", daemon=True
            )
            for number, jobs in enumerate(self.jobs)
        ]
        for thread in self.threads:
            thread.start()

    def work(self, jobs):
        try:
            while (job := jobs.get()) is not None:
                sequence, rows = job
                imported, error = 0, None
                if not self.stopping.is_set():
                    try:
                        imported = self.write(rows)
                    except BaseException as exception:  # handed to the submitting thread
                        error = exception
                with self.outcome_ready:
                    self.outcomes[sequence] = (len(rows), imported, error)
                    if error is not None:
                        # Set only now: a batch skipped from here on has a later sequence
                        # than the error, which is raised before its outcome is counted.
                        self.stopping.set()
                    self.outcome_ready.notify_all()
        finally:
            connections.close_all()

    def submit(self, rows, *, lane):
        """Hand ``rows`` to the thread of ``lane``; return ``[(rows, imported)]`` for the
        batches written by now."""
        self.jobs[lane].put((self.submitted, rows))
        self.submitted += 1
        return self.collect(wait=False)

    def finish(self):
        return self.collect(wait=True)

    def collect(self, *, wait):
        written = []
        with self.outcome_ready:
            while self.returned < self.submitted:
                if self.returned not in self.outcomes:
                    if not wait:
                        break
                    self.outcome_ready.wait()
                    continue
                rows, imported, error = self.outcomes.pop(self.returned)
                self.returned += 1
                if error is not None:
                    raise error
                written.append((rows, imported))
        return written

    def close(self):
        """Stop the threads (after the batches they are writing) and close their connections."""
        if not any(thread.is_alive() for thread in self.threads):
            return
        if self.returned < self.submitted:
            # Closed before the end (an error, an interrupt): batches not begun are skipped.
            self.stopping.set()
        for jobs in self.jobs:
            jobs.put(None)
        for thread in self.threads:
            thread.join()


def batch_write_retrying(write):
    """``write``, attempted again when PostgreSQL rolled its batch back to break a deadlock."""

    def write_retrying(rows):
        attempt = 1
        while True:
            try:
                return write(rows)
            except OperationalError as error:
                sqlstate = getattr(error.__cause__, "sqlstate", None)
                if sqlstate != DEADLOCK_SQLSTATE or attempt == DEADLOCK_ATTEMPTS:
                    raise
                attempt += 1

    return write_retrying


@dataclass(frozen=True)
class BatchOutcome:
    imported: int
    suppressed: int
    skipped: list  # (line, email, reason)


@transaction.atomic
def batch_write(*, rows, newsletter, confirm, source="import:signalpost"):
    """Write one batch of checked rows; return its ``BatchOutcome``.

    Rows for suppressed addresses are skipped; rows the file marks suppressed go on
    the list (``suppressions_add``); the rest become subscriptions.
    """
    now = timezone.now()
    status = Status.PENDING if confirm else Status.ACTIVE
    subscribing, suppressing = [], []
    for row in rows:
        (suppressing if row[ROW_SUPPRESS] else subscribing).append(row)
    skipped = []
    if subscribing:
        hashes = {row[0]: email_hash(row[0]) for row in subscribing}
        suppressed = suppressed_among(hashes=list(hashes.values()), newsletter=newsletter)
        if suppressed:
            kept = []
            for row in subscribing:
                if hashes[row[0]] in suppressed:
                    skipped.append((row[ROW_LINE], row[0], SUPPRESSED_SKIP))
                else:
                    kept.append(row)
            subscribing = kept
    written = subscriptions_insert_imported(
        rows=[row[:ROW_LINE] for row in subscribing],
        newsletter=newsletter,
        now=now,
        status=status,
    )
    created_ids = written.subscription_ids
    if created_ids:
        subscribers_imported.send(
            sender=Subscription,
            newsletter=newsletter,
            subscription_ids=created_ids,
            source=Subscription.Source.IMPORT.value,
        )
        if confirm:
            confirmations_request(subscription_ids=created_ids)
    for tag, profile_ids in written.tagged.items():
        profile_tagged.send(sender=Subscription, tag=tag, profile_ids=profile_ids, source="import")
    if suppressing:
        suppressions_add(
            entries=[(row[0], row[ROW_SUPPRESS], row[ROW_SUPPRESSED_AT]) for row in suppressing],
            newsletter=newsletter,
            source=source,
        )
    return BatchOutcome(imported=len(created_ids), suppressed=len(suppressing), skipped=skipped)


SUPPRESSED_SKIP = "on the suppression list: only the person can come back, by confirming"


def confirmations_request(*, subscription_ids):
    """Ask each imported pending subscription to confirm (one email each, durable)."""
    for subscription in Subscription.objects.filter(id__in=subscription_ids).select_related(
        "profile", "newsletter"
    ):
        subscription_requested.send(
            sender=Subscription,
            profile=subscription.profile,
            newsletter=subscription.newsletter,
            subscription=subscription,
            user_email=subscription.profile.email,
            source=Subscription.Source.IMPORT.value,
        )


# The export's columns: each is named after its field, without the "profile__".
EXPORT_FIELDS = [
    "profile__email",
    "profile__name",
    "status",
    "source",
    "created_at",
    "subscribed_at",
    "unsubscribed_at",
    "consent_at",
    "consent_ip",
]


def subscribers_export(*, newsletter, statuses=None):
    """Yield CSV lines (text) of ``newsletter``'s subscribers, streamed from the database."""
    subscriptions = Subscription.objects.filter(newsletter=newsletter)
    if statuses:
        subscriptions = subscriptions.filter(status__in=statuses)
    yield from _csv_lines(subscriptions, EXPORT_FIELDS)


def subscriptions_export(*, subscriptions):
    """Yield CSV lines of any ``subscriptions`` (as the admin's list filtered them), with
    the newsletter's slug first; streamed, in id order."""
    yield from _csv_lines(subscriptions, ["newsletter__slug", *EXPORT_FIELDS])


def _csv_lines(subscriptions, fields):
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values):
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line([lookup.removeprefix("profile__").replace("__", "_") for lookup in fields])
    rows = subscriptions.order_by("id").values_list(*fields).iterator(chunk_size=2000)
    for values in rows:
        yield line(
            [
                value.isoformat() if isinstance(value, datetime) else formula_escape(value or "")
                for value in values
            ]
        )


# A browser import: the file is stored, the worker imports it and counts as it goes.
UPLOAD_MAX_BYTES = 5 * 1024 * 1024
PROGRESS_BATCH_SIZE = 1000


def data_lines_count(binary: typing.BinaryIO) -> int:
    """Count the lines after the header: what the progress bar counts up to."""
    newlines = 0
    last = b"\n"
    for chunk in iter(lambda: binary.read(1 << 16), b""):
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    binary.seek(0)
    return max(0, newlines + (last != b"\n") - 1)


def subscriber_import_run(*, subscriber_import_id):
    """Import a stored ``SubscriberImport``'s file; return it, finished (or ``None``).

    Counts are written after every batch (one UPDATE), so the admin's progress bar
    moves; rejected rows go to a CSV report stored beside the file. Running it
    again (a worker lost midway) imports the file again: rows already written are
    counted as duplicates, as ever. A file refused as a whole ends ``failed`` with
    the reason; nothing else is raised for its content. Any other error also ends it
    ``failed`` (rows written so far stay) and is raised, for the task's traceback.
    Once finished, the uploaded file is deleted: only the counts and the report stay.
    """
    Job = SubscriberImport
    job = Job.objects.select_related("newsletter").filter(pk=subscriber_import_id).first()
    if job is None or job.status in {Job.Status.DONE, Job.Status.FAILED}:
        return job
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)

    def on_progress(report):
        Job.objects.filter(pk=job.pk).update(
            rows=report.rows,
            imported=report.imported,
            duplicates=report.duplicates,
            rejected=report.rejected,
            skipped=report.skipped,
            suppressed=report.suppressed,
            recognised_format=report.format,
        )

    with tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as report_file:
        rejected = csv.writer(report_file)
        rejected.writerow(["line", "email", "reason"])

        def on_reject(number, email, reason):
            rejected.writerow([number, formula_escape(email), reason])

        def on_skip(number, email, reason):
            rejected.writerow([number, formula_escape(email), f"skipped: {reason}"])

        try:
            with job.file.open("rb") as binary:
                report = subscribers_import(
                    binary=binary,
                    newsletter=job.newsletter,
                    confirm=job.confirm,
                    on_reject=on_reject,
                    on_skip=on_skip,
                    on_progress=on_progress,
                    batch_size=PROGRESS_BATCH_SIZE,
                    format_name=job.format or None,
                )
        except ImportFileError as error:
            job.status = Job.Status.FAILED
            job.error = str(error)
        except Exception as error:
            Job.objects.filter(pk=job.pk).update(
                status=Job.Status.FAILED,
                error=f"the import stopped ({type(error).__name__}); rows written so far stay",
                finished_at=timezone.now(),
            )
            raise
        else:
            job.status = Job.Status.DONE
            job.rows, job.imported = report.rows, report.imported
            job.duplicates, job.rejected = report.duplicates, report.rejected
            job.skipped, job.suppressed = report.skipped, report.suppressed
            job.recognised_format = report.format
            if report.rejected or report.skipped:
                report_file.seek(0)
                job.report.save("rejected.csv", File(report_file), save=False)
    job.finished_at = timezone.now()
    job.file.delete(save=False)
    job.save()
    return job
