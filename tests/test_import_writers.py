"""Imports written by several connections at once (PostgreSQL), and what guards them."""

import random
import threading
from io import BytesIO, StringIO

import psycopg.errors
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.newsletters import imports
from signalpost.newsletters.imports import (
    BatchWriterThreads,
    batch_write_retrying,
    subscribers_import,
)
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)
needs_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="parallel writers need PostgreSQL"
)


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly")


def shuffled_file_with_duplicates(count, *, seed):
    """CSV bytes: ``count`` people, each address again later in another case or with spaces,
    a few broken rows; returns ``(bytes, unique addresses, rows rejected)``."""
    rng = random.Random(seed)
    emails = [f"Person.{number}@Example.org" for number in range(count)]
    rows = [f"{email},Person {number}" for number, email in enumerate(emails)]
    rows += [f"  {email.upper()}  ,Again" for email in rng.sample(emails, count // 3)]
    rows += ["not-an-address,Broken", "someone@,Broken", "a@b..c,Broken"]
    rng.shuffle(rows)
    return ("email,name\n" + "\n".join(rows) + "\n").encode(), count, 3


def table_counts(newsletter):
    return {
        "profiles": Profile.objects.count(),
        "subscriptions": Subscription.objects.filter(newsletter=newsletter).count(),
        "profile_subscriptions": Profile.subscriptions.through.objects.filter(
            newsletter=newsletter
        ).count(),
        "imported_activity": Activity.objects.filter(newsletter=newsletter).count(),
    }


@needs_postgresql
def test_four_writers_import_exactly_what_one_writer_imports(weekly, monkeypatch):
    # Batches sorted by address never deadlock, so none may need the retry here
    # (without the sorting this test fails: PostgreSQL reports deadlocks).
    monkeypatch.setattr(imports, "DEADLOCK_ATTEMPTS", 1)
    content, unique, broken = shuffled_file_with_duplicates(3000, seed=7)
    # Someone already subscribed and someone who left: neither is touched.
    subscribe(email="person.5@example.org", newsletter=weekly, source="admin")
    unsubscribe(email="person.5@example.org", newsletter=weekly, reason="test")
    subscribe(email="person.6@example.org", newsletter=weekly, source="admin")
    progress = []

    report = subscribers_import(
        binary=BytesIO(content),
        newsletter=weekly,
        batch_size=97,  # many batches, so duplicates meet in batches written at once
        writers=4,
        on_progress=lambda report: progress.append(report.imported),
    )

    assert report.rows == unique + unique // 3 + broken
    assert report.rejected == broken
    assert report.imported == unique - 2
    assert report.duplicates == unique // 3 + 2
    assert progress == sorted(progress) and progress[-1] == report.imported
    counts = table_counts(weekly)
    assert counts["profiles"] == unique
    assert counts["subscriptions"] == unique
    # The one who left stays unsubscribed, so is not among the profile's subscriptions.
    assert counts["profile_subscriptions"] == unique - 1
    assert Subscription.objects.get(profile__email="person.5@example.org").status == (
        "unsubscribed"
    )
    assert Activity.objects.filter(event="imported").count() == unique - 2
    assert not [t for t in threading.enumerate() if t.name.startswith("import-writer")]


@needs_postgresql
def test_several_writers_keep_an_address_s_first_row_as_one_writer_does(weekly):
    # Each address comes again a few rows on, so usually in a batch written at the same time.
    lines = []
    for number in range(600):
        lines.append(f"person.{number}@example.org,First {number}")
        if number >= 7:
            lines.append(f"PERSON.{number - 7}@example.org,Again {number - 7}")
    content = ("email,name\n" + "\n".join(lines) + "\n").encode()

    report = subscribers_import(
        binary=BytesIO(content), newsletter=weekly, batch_size=10, writers=4
    )

    assert (report.imported, report.duplicates) == (600, 593)
    names = set(Profile.objects.values_list("name", flat=True))
    assert names == {f"First {number}" for number in range(600)}


@needs_postgresql
def test_the_command_writes_with_several_connections(tmp_path, weekly):
    content, unique, broken = shuffled_file_with_duplicates(1200, seed=3)
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    out = StringIO()
    call_command("import_subscribers", str(path), "--newsletter=weekly", "--writers=3", stdout=out)
    assert f"{unique} imported" in out.getvalue()
    assert f"{broken} rejected" in out.getvalue()
    assert table_counts(weekly)["subscriptions"] == unique


@needs_postgresql
def test_a_failing_batch_stops_the_import_and_its_writers(weekly, monkeypatch):
    real_batch_write = imports.batch_write
    calls = []

    def batch_write_failing_third(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the disk is full")
        return real_batch_write(**kwargs)

    monkeypatch.setattr(imports, "batch_write", batch_write_failing_third)
    content = ("email\n" + "".join(f"p{n}@example.com\n" for n in range(2000))).encode()
    with pytest.raises(RuntimeError, match="the disk is full"):
        subscribers_import(binary=BytesIO(content), newsletter=weekly, batch_size=50, writers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("import-writer")]
    # No batch starts once one failed: at most those already being written finish.
    assert len(calls) <= 6
    # Batches are whole or absent: each written one brought all four of its rows.
    counts = table_counts(weekly)
    assert counts["subscriptions"] % 50 == 0 and counts["subscriptions"] < 2000
    assert counts["profiles"] == counts["subscriptions"] == counts["imported_activity"]


def test_sqlite_and_one_writer_write_in_the_calling_thread(weekly, monkeypatch):
    writers_started = []
    monkeypatch.setattr(
        imports.BatchWriterThreads, "__init__", lambda *a, **k: writers_started.append(1)
    )
    content = b"email\na@example.com\nb@example.com\n"
    report = subscribers_import(binary=BytesIO(content), newsletter=weekly, writers=1)
    assert report.imported == 2
    if connection.vendor == "sqlite":
        report = subscribers_import(binary=BytesIO(content), newsletter=weekly, writers=4)
        assert report.duplicates == 2
    assert writers_started == []


def test_inside_a_transaction_every_row_is_written_in_it(weekly, monkeypatch):
    writers_started = []
    monkeypatch.setattr(
        imports.BatchWriterThreads, "__init__", lambda *a, **k: writers_started.append(1)
    )
    content = b"email\na@example.com\nb@example.com\n"
    with pytest.raises(RuntimeError, match="changed my mind"), transaction.atomic():
        report = subscribers_import(binary=BytesIO(content), newsletter=weekly, writers=4)
        assert report.imported == 2
        raise RuntimeError("changed my mind")
    assert writers_started == []
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize("writers", ["0", "9", "-1", "two"])
def test_the_command_refuses_a_bad_writer_count(tmp_path, weekly, writers):
    path = tmp_path / "people.csv"
    path.write_bytes(b"email\na@example.com\n")
    with pytest.raises(CommandError):
        call_command("import_subscribers", str(path), "--newsletter=weekly", f"--writers={writers}")
    assert Subscription.objects.count() == 0


def test_the_import_function_refuses_a_bad_writer_count(weekly):
    with pytest.raises(ValueError, match="writers must be 1 to 8"):
        subscribers_import(binary=BytesIO(b"email\n"), newsletter=weekly, writers=0)


def deadlock():
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


def test_a_batch_chosen_as_a_deadlock_victim_is_written_again():
    outcomes = [deadlock(), deadlock(), 5]

    def write(rows):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert batch_write_retrying(write)(["row"]) == 5
    assert outcomes == []


def test_other_errors_and_a_third_deadlock_are_raised():
    def write_other(rows):
        raise OperationalError("server closed the connection")

    with pytest.raises(OperationalError, match="server closed"):
        batch_write_retrying(write_other)(["row"])

    attempts = []

    def write_deadlocking(rows):
        attempts.append(1)
        raise deadlock()

    with pytest.raises(OperationalError, match="deadlock"):
        batch_write_retrying(write_deadlocking)(["row"])
    assert len(attempts) == imports.DEADLOCK_ATTEMPTS


def test_submitting_waits_while_the_writers_are_busy_so_memory_stays_bounded():
    release = threading.Event()
    started = threading.Semaphore(0)

    def write(rows):
        started.release()
        release.wait(10)
        return len(rows)

    writer = BatchWriterThreads(write=write, count=2)
    submitter_done = threading.Event()
    written = []

    def submit_five():
        for number in range(5):
            written.extend(writer.submit([number] * (number + 1), lane=number % 2))
        submitter_done.set()

    submitter = threading.Thread(target=submit_five)
    submitter.start()
    try:
        assert started.acquire(timeout=5) and started.acquire(timeout=5)
        # Each lane writes one batch and has one waiting: the fifth cannot be handed over.
        assert not submitter_done.wait(0.3)
    finally:
        release.set()
        submitter.join(5)
    assert submitter_done.is_set()
    written.extend(writer.finish())
    # Every batch's outcome comes back once, in the order the batches were submitted.
    assert written == [(size, size) for size in range(1, 6)]
    writer.close()
    assert not any(thread.is_alive() for thread in writer.threads)


@pytest.mark.parametrize("writers", ["1", "2"])
def test_an_interrupted_import_says_how_to_finish_and_leaves_whole_batches(
    tmp_path, weekly, monkeypatch, writers
):
    real_row_check = imports.row_check
    checked = []

    def row_check_interrupted(row, **options):
        checked.append(1)
        if len(checked) == 5200:
            raise KeyboardInterrupt
        return real_row_check(row, **options)

    monkeypatch.setattr(imports, "row_check", row_check_interrupted)
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(6000)))
    with pytest.raises(CommandError, match=r"Interrupted.*import the same file again"):
        call_command("import_subscribers", str(path), "--newsletter=weekly", f"--writers={writers}")
    assert not [t for t in threading.enumerate() if t.name.startswith("import-writer")]
    assert Subscription.objects.count() in (0, 5000)
    assert Profile.objects.count() == Subscription.objects.count()

    monkeypatch.setattr(imports, "row_check", real_row_check)
    out = StringIO()
    call_command("import_subscribers", str(path), "--newsletter=weekly", stdout=out)
    assert Subscription.objects.count() == 6000


def test_one_writer_writes_a_deadlocked_batch_again_but_not_inside_a_transaction(
    weekly, monkeypatch
):
    real_batch_write = imports.batch_write
    calls = []

    def batch_write_deadlocking_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise deadlock()
        return real_batch_write(**kwargs)

    monkeypatch.setattr(imports, "batch_write", batch_write_deadlocking_once)
    content = b"email\na@example.com\nb@example.com\n"
    report = subscribers_import(binary=BytesIO(content), newsletter=weekly, writers=1)
    assert (report.imported, len(calls)) == (2, 2)

    # In the caller's transaction a deadlock has aborted it: only the caller can start again.
    calls.clear()
    with pytest.raises(OperationalError, match="deadlock"), transaction.atomic():
        subscribers_import(binary=BytesIO(content), newsletter=weekly, writers=1)
    assert len(calls) == 1


@needs_postgresql
def test_people_subscribing_through_the_site_during_an_import_meet_no_error(weekly):
    emails = [f"reader{number}@example.org" for number in range(2400)]
    content = ("email\n" + "".join(f"{email}\n" for email in emails)).encode()
    # Addresses near the end of the file, in another order and case, as the form would submit
    # them meanwhile: some reach the site before the import reaches them.
    site_emails = random.Random(5).sample(emails[-600:], 300)
    site_errors = []

    def subscribe_through_the_site():
        try:
            for email in site_emails:
                subscribe(email=email.upper(), newsletter=weekly, source="form")
        except Exception as error:  # reported by the assertion below
            site_errors.append(error)
        finally:
            connection.close()

    site = threading.Thread(target=subscribe_through_the_site)
    site.start()
    report = subscribers_import(
        binary=BytesIO(content), newsletter=weekly, batch_size=150, writers=3
    )
    site.join(60)

    assert site_errors == []
    assert report.imported + report.duplicates == len(emails)
    assert Profile.objects.count() == len(emails)
    assert Subscription.objects.filter(newsletter=weekly).count() == len(emails)
    # Whoever came first decided the subscription; the import never duplicated or overwrote it.
    assert report.duplicates == Subscription.objects.filter(source="form").count()
