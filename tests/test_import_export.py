"""Importing subscribers from CSV (broken files included) and exporting them."""

import csv
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.api.tokens import api_token_create
from signalpost.newsletters.imports import subscribers_import
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe, unsubscribe
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter

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
