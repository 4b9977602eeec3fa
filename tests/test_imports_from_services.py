"""Importing the exports of Mailchimp, Substack, Buttondown and listmonk, and broken files."""

import csv
import io
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.accounts.models import Profile
from signalpost.api.tokens import api_token_create
from signalpost.newsletters.imports import subscribers_import
from signalpost.newsletters.models import Subscription, Suppression
from tests import service_exports as exports
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly", opt_in="single")


def write(tmp_path, content, name="export.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run_import(*arguments, newsletter="weekly"):
    """Run the command with ``arguments`` (files, then options) on ``newsletter``."""
    out = StringIO()
    call_command(
        "import_subscribers", *map(str, arguments), f"--newsletter={newsletter}", stdout=out
    )
    return out.getvalue()


def report_rows(path):
    report = path.with_suffix(path.suffix + ".rejected.csv")
    return list(csv.DictReader(report.open())) if report.exists() else []


def statuses():
    return dict(Subscription.objects.values_list("profile__email", "status"))


def suppressed():
    return {
        (row.email, row.newsletter.slug if row.newsletter else None, row.reason)
        for row in Suppression.objects.select_related("newsletter")
    }


def test_a_mailchimp_export_is_recognised_and_its_names_consent_merge_fields_and_tags_carry_over(
    tmp_path, weekly
):
    path = write(tmp_path, exports.MAILCHIMP_SUBSCRIBED, "subscribed_members_export_a1.csv")

    out = run_import(path)

    assert "Format: mailchimp." in out
    assert "4 rows: 3 imported, 0 duplicates, 1 rejected" in out
    ada = Profile.objects.get(email="ada@example.com")
    assert ada.name == "Ada Lovelace"
    assert ada.attributes == {"company": "Analytical Engines, Ltd"}
    assert sorted(ada.tags.values_list("name", flat=True)) == ["early readers", "vip"]
    subscription = ada.subscription_records.get()
    assert (subscription.status, subscription.source) == ("active", "import")
    # The confirmation is the consent Mailchimp holds: its time (UTC) and IP.
    assert subscription.consent_at.isoformat() == "2024-03-14T09:14:02+00:00"
    assert subscription.consent_ip == "198.51.100.4"
    grace = Subscription.objects.get(profile__email="grace@example.com")
    assert grace.consent_at.isoformat() == "2024-04-02T08:00:00+00:00"
    assert grace.consent_ip is None
    # A formula typed as a name stays text; a bad IP is dropped, not a reason to refuse.
    mixed = Profile.objects.get(email="mixed.case@example.com")
    assert mixed.name == '=HYPERLINK("http://evil.example")'
    assert mixed.subscription_records.get().consent_ip is None
    [rejected] = report_rows(path)
    assert rejected["line"] == "5" and rejected["email"] == "not-an-address"


def test_mailchimp_unsubscribed_and_cleaned_files_fill_the_suppression_list_not_the_subscribers(
    tmp_path, weekly
):
    other = make_newsletter(slug="other", name="Other")
    unsubscribed = write(tmp_path, exports.MAILCHIMP_UNSUBSCRIBED, "unsubscribed.csv")
    cleaned = write(tmp_path, exports.MAILCHIMP_CLEANED, "cleaned.csv")

    assert "2 rows: 0 imported, 0 duplicates, 0 rejected, 2 suppressed" in run_import(unsubscribed)
    assert "1 rows: 0 imported, 0 duplicates, 0 rejected, 1 suppressed" in run_import(cleaned)

    assert Subscription.objects.count() == 0
    assert suppressed() == {
        # Leaving one list is leaving that list; a spam report or a dead address is for all.
        ("left@example.com", "weekly", "unsubscribed"),
        ("angry@example.com", None, "complained"),
        ("gone@example.com", None, "cleaned"),
    }
    left = Suppression.objects.get(email="left@example.com")
    assert left.suppressed_at.isoformat() == "2024-02-02T12:00:00+00:00"
    assert left.source == "import:mailchimp"
    # The other newsletter may still have the one who left Weekly, but not the dead address.
    path = write(
        tmp_path, "email\nleft@example.com\ngone@example.com\nangry@example.com\n", "o.csv"
    )
    assert "3 rows: 1 imported, 0 duplicates, 0 rejected, 2 skipped" in run_import(
        path, newsletter="other"
    )
    assert statuses() == {"left@example.com": "active"}
    assert other.subscriptions.get().profile.email == "left@example.com"


def test_a_later_import_skips_suppressed_addresses_and_reports_their_lines(tmp_path, weekly):
    run_import(write(tmp_path, exports.MAILCHIMP_UNSUBSCRIBED, "unsubscribed.csv"))
    path = write(tmp_path, exports.MAILCHIMP_SUBSCRIBED.replace("grace@", "left@"))

    out = run_import(path)

    assert "4 rows: 2 imported, 0 duplicates, 1 rejected, 1 skipped" in out
    assert "left@example.com" not in statuses()
    skipped = [row for row in report_rows(path) if row["reason"].startswith("skipped")]
    assert [(row["line"], row["email"]) for row in skipped] == [("3", "left@example.com")]
    assert "suppression list" in skipped[0]["reason"]


def test_an_unsubscribed_file_after_the_subscribed_one_ends_those_subscriptions(tmp_path, weekly):
    run_import(write(tmp_path, "email\nleft@example.com\nangry@example.com\n", "first.csv"))
    assert statuses() == {"left@example.com": "active", "angry@example.com": "active"}

    run_import(write(tmp_path, exports.MAILCHIMP_UNSUBSCRIBED, "unsubscribed.csv"))

    assert statuses() == {"left@example.com": "unsubscribed", "angry@example.com": "complained"}
    left = Profile.objects.get(email="left@example.com")
    assert list(left.subscriptions.all()) == []
    assert left.subscription_records.get().unsubscribe_reason == "suppressed: unsubscribed"


def test_substacks_active_subscription_is_the_paid_plan_and_email_disabled_suppresses(
    tmp_path, weekly
):
    path = write(tmp_path, exports.SUBSTACK, "email_list.csv")

    out = run_import(path)

    assert "Format: substack." in out
    assert "4 rows: 2 imported, 0 duplicates, 1 rejected, 1 suppressed" in out
    assert statuses() == {"free@example.com": "active", "paid@example.com": "active"}
    assert Profile.objects.get(email="free@example.com").attributes == {"substack_plan": "other"}
    assert Profile.objects.get(email="paid@example.com").attributes == {
        "substack_paid": True,
        "substack_plan": "yearly",
        "substack_paid_until": "2025-06-01T00:00:00.000Z",
    }
    free = Subscription.objects.get(profile__email="free@example.com")
    assert free.consent_at.isoformat() == "2023-06-01T10:20:30+00:00"
    assert suppressed() == {("quiet@example.com", "weekly", "unsubscribed")}
    [rejected] = report_rows(path)
    assert rejected["line"] == "5"
    assert rejected["reason"] == "active_subscription is not true or false: 'maybe'"


def test_buttondown_types_become_subscribers_suppressions_or_skipped_rows(tmp_path, weekly):
    path = write(tmp_path, exports.BUTTONDOWN, "buttondown-subscribers.csv")

    out = run_import(path)

    assert "Format: buttondown." in out
    assert "5 rows: 2 imported, 0 duplicates, 0 rejected, 1 skipped, 2 suppressed" in out
    assert statuses() == {"reader@example.com": "active", "payer@example.com": "active"}
    reader = Profile.objects.get(email="reader@example.com")
    assert reader.attributes == {
        "city": "Lisbon",
        "buttondown_notes": "met at PyCon",
        "buttondown_referrer_url": "https://blog.example/post",
    }
    assert sorted(reader.tags.values_list("name", flat=True)) == ["django", "python"]
    subscription = reader.subscription_records.get()
    assert subscription.consent_ip == "192.0.2.10"
    assert subscription.consent_at.isoformat() == "2024-02-01T09:00:00.123456+00:00"
    assert suppressed() == {
        ("gone@example.com", "weekly", "unsubscribed"),
        ("dead@example.com", None, "bounced"),
    }
    [skipped] = report_rows(path)
    assert skipped["line"] == "4" and "unactivated" in skipped["reason"]


def test_listmonk_json_attributes_and_go_times_carry_over_and_blocklisted_is_suppressed(
    tmp_path, weekly
):
    path = write(tmp_path, exports.LISTMONK, "subscribers.csv")

    out = run_import(path)

    assert "Format: listmonk." in out
    assert "4 rows: 1 imported, 0 duplicates, 1 rejected, 1 skipped, 1 suppressed" in out
    monk = Profile.objects.get(email="lm@example.com")
    assert (monk.name, monk.attributes) == ("List Monk", {"city": "Bengaluru", "projects": 3})
    assert monk.subscription_records.get().consent_at.isoformat() == (
        "2024-03-05T10:11:12.345678+00:00"
    )
    assert suppressed() == {("blocked@example.com", None, "blocklisted")}
    reasons = {row["email"]: row["reason"] for row in report_rows(path)}
    assert reasons["badjson@example.com"] == "attributes is not JSON: '{not json'"
    assert reasons["off@example.com"] == "skipped: disabled in listmonk"


def test_an_unknown_format_names_the_columns_found_and_the_formats_known(tmp_path, weekly):
    path = write(tmp_path, "Mail,Full name\nann@example.com,Ann\n")

    with pytest.raises(CommandError) as refused:
        run_import(path)

    message = str(refused.value)
    assert "found: mail, full name" in message
    for name in ("mailchimp", "substack", "buttondown", "listmonk", "signalpost"):
        assert name in message
    assert Profile.objects.count() == 0


def test_a_named_format_whose_columns_are_missing_is_refused_naming_them(tmp_path, weekly):
    path = write(tmp_path, "email,name\nann@example.com,Ann\n")

    with pytest.raises(CommandError, match="not a Substack subscriber export: no column active_"):
        run_import(path, "--format=substack")

    assert Profile.objects.count() == 0


def test_a_named_format_is_used_even_when_the_columns_would_say_another(tmp_path, weekly):
    # A listmonk export also has an email column, so it fits Signalpost's own format too.
    path = write(tmp_path, exports.LISTMONK)

    out = run_import(path, "--format=signalpost")

    assert "Format: signalpost." in out
    assert "4 rows: 4 imported" in out
    assert Suppression.objects.count() == 0


def test_a_utf8_bom_before_a_mailchimp_header_is_still_recognised(tmp_path, weekly):
    path = write(tmp_path, b"\xef\xbb\xbf" + exports.MAILCHIMP_CLEANED.encode())

    assert "Format: mailchimp." in run_import(path)
    assert suppressed() == {("gone@example.com", None, "cleaned")}


def test_a_latin1_file_has_its_non_utf8_rows_rejected_and_the_rest_imported(tmp_path, weekly):
    content = "email,name\nzoe@example.com,Zoë\nann@example.com,Ann\n".encode("latin-1")
    path = write(tmp_path, content)

    assert "2 rows: 1 imported, 0 duplicates, 1 rejected" in run_import(path)
    [rejected] = report_rows(path)
    assert rejected["line"] == "2" and "not UTF-8" in rejected["reason"]


def test_a_latin1_header_is_refused_whole_with_a_way_forward(tmp_path, weekly):
    path = write(tmp_path, "email,prénom\nann@example.com,Ann\n".encode("latin-1"))

    with pytest.raises(CommandError, match="header is not UTF-8"):
        run_import(path)
    assert Profile.objects.count() == 0


def test_a_truncated_export_imports_its_whole_rows_and_reports_the_cut_one(tmp_path, weekly):
    cut = exports.MAILCHIMP_SUBSCRIBED[: exports.MAILCHIMP_SUBSCRIBED.index("Hopper") + 3]
    path = write(tmp_path, cut)

    out = run_import(path)

    assert "2 rows: 1 imported, 0 duplicates, 1 rejected" in out
    assert statuses() == {"ada@example.com": "active"}
    [rejected] = report_rows(path)
    assert rejected["line"] == "3"
    assert rejected["reason"].startswith("the file ends in the middle of this row (3 of 21")


def test_an_oversized_merge_field_rejects_its_row_naming_the_column(tmp_path, weekly):
    content = exports.MAILCHIMP_SUBSCRIBED.replace("Analytical Engines, Ltd", "A" * 5000)
    path = write(tmp_path, content)

    run_import(path)

    reasons = {row["email"]: row["reason"] for row in report_rows(path)}
    assert reasons["ada@example.com"] == "company is 5,000 characters; at most 1,000"
    assert "ada@example.com" not in statuses()


def test_a_field_over_the_csv_limit_is_rejected_not_a_crash(tmp_path, weekly):
    path = write(tmp_path, f"email,name\nann@example.com,{'x' * 20_000}\nbo@example.com,Bo\n")

    out = run_import(path)

    assert "1 imported" in out and "1 rejected" in out


def test_the_api_import_recognises_an_export_and_reports_what_it_found(client, weekly):
    token = api_token_create(name="importer")[1]
    response = client.post(
        "/api/v1/newsletters/weekly/imports",
        exports.BUTTONDOWN,
        content_type="text/csv",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["format"], body["imported"], body["skipped"], body["suppressed"]) == (
        "buttondown",
        2,
        1,
        2,
    )
    assert body["skips"][0]["line"] == 4


def test_the_api_refuses_an_unknown_format_naming_columns_and_formats(client, weekly):
    token = api_token_create(name="importer")[1]
    headers = {"Authorization": f"Bearer {token}"}

    unknown = client.post(
        "/api/v1/newsletters/weekly/imports",
        "Mail,Full name\nann@example.com,Ann\n",
        content_type="text/csv",
        headers=headers,
    )
    named = client.post(
        "/api/v1/newsletters/weekly/imports?format=hotmail",
        "email\nann@example.com\n",
        content_type="text/csv",
        headers=headers,
    )

    assert unknown.status_code == 400
    assert "found: mail, full name" in unknown.content.decode()
    assert "mailchimp" in unknown.content.decode()
    assert named.status_code == 400
    assert "format" in named.content.decode()
    assert Profile.objects.count() == 0


def test_the_import_keeps_the_same_rows_whether_written_in_one_batch_or_many(weekly):
    content = exports.MAILCHIMP_SUBSCRIBED.encode()

    report = subscribers_import(binary=io.BytesIO(content), newsletter=weekly, batch_size=1)

    assert (report.format, report.imported, report.rejected) == ("mailchimp", 3, 1)
    ada = Profile.objects.get(email="ada@example.com")
    assert sorted(ada.tags.values_list("name", flat=True)) == ["early readers", "vip"]


def test_a_mailchimp_audiences_three_files_import_in_one_command(tmp_path, weekly):
    files = [
        write(tmp_path, exports.MAILCHIMP_SUBSCRIBED, "subscribed.csv"),
        write(tmp_path, exports.MAILCHIMP_UNSUBSCRIBED, "unsubscribed.csv"),
        write(tmp_path, exports.MAILCHIMP_CLEANED, "cleaned.csv"),
    ]

    out = run_import(*files)

    assert (
        f"{files[1]}: mailchimp: 2 rows: 0 imported, 0 duplicates, 0 rejected, 2 suppressed" in out
    )
    assert "7 rows: 3 imported, 0 duplicates, 1 rejected, 3 suppressed in" in out
    assert len(statuses()) == 3 and Suppression.objects.count() == 3


def test_one_unknown_file_among_several_stops_them_all_before_any_row(tmp_path, weekly):
    good = write(tmp_path, exports.MAILCHIMP_SUBSCRIBED, "subscribed.csv")
    bad = write(tmp_path, "Mail\nann@example.com\n", "mystery.csv")

    with pytest.raises(CommandError, match=r"mystery\.csv: no email column"):
        run_import(good, bad)

    assert Profile.objects.count() == 0


def hostile_mailchimp_export():
    """A Mailchimp subscribed file with every kind of odd row, its ``Company`` merge field
    twice (a dict of the columns keeps the last one), CRLF line ends."""
    header = (
        "Email Address,First Name,Last Name,Company,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,"
        "CONFIRM_IP,LEID,TAGS,Company"
    )
    lines = [
        header.encode(),
        # A confirm IP that is not one: the opt-in IP is the consent's.
        b"ada@example.com,Ada,Lovelace,First,2024-03-01 10:00:00,203.0.113.9,"
        b'2024-03-02 11:00:00,999.1.1.1,1,"""VIP""",Second',
        # Too few fields: the missing ones are empty; the one Company there is the company.
        b"bob@example.com,Bob,,Solo,2024-03-01 10:00:00,2001:DB8::1",
        # Too many fields: the extra ones are ignored.
        b"cy@example.com,Cy,Young,,,,,,,,,extra one,extra two",
        b"dee@example.com,Dee,,,,,2024-13-45 10:00:00,,,,",
        # Not UTF-8 (Latin-1).
        b"\xe8ve@example.com,\xc8ve,,,,,,,,,",
        b"fay@example.com,Fay,,,,,,,,," + b"x" * 1500,
        b"gus@example.com,Gus,," + b"y" * 10_001 + b",,,,,,,",
        b"hal@example.com,,,,,::1,,,,,",
        # Only names in the other merge fields Mailchimp knows, a tag that is a list.
        b'ida@example.com,,,,,,,,,"""a"",""b""",',
        # The address is what the file says (trimmed, lower-cased), wherever its column.
        b"  JOY@Example.COM ,Joy,,,,,,,,,",
    ]
    return b"\r\n".join(lines) + b"\r\n"


def test_hostile_rows_of_a_mailchimp_export_are_reported_one_by_one_and_the_rest_imported(
    tmp_path, weekly
):
    path = write(tmp_path, hostile_mailchimp_export(), "subscribed_members_export_h.csv")

    out = run_import(path)

    # Every row is either imported or rejected with its line and reason: nothing lost.
    assert "10 rows: 6 imported, 0 duplicates, 4 rejected" in out
    assert [(row["line"], row["email"], row["reason"]) for row in report_rows(path)] == [
        ("5", "dee@example.com", "confirm_time is not a time: '2024-13-45 10:00:00'"),
        ("6", "", "not UTF-8: save the file as UTF-8 and import this row again"),
        ("7", "fay@example.com", "company is 1,500 characters; at most 1,000"),
        ("8", "", "not readable as CSV: field larger than field limit (10000)"),
    ]
    people = {
        profile.email: (
            profile.name,
            profile.attributes,
            sorted(profile.tags.values_list("name", flat=True)),
        )
        for profile in Profile.objects.all()
    }
    assert people == {
        "ada@example.com": ("Ada Lovelace", {"company": "Second"}, ["vip"]),
        "bob@example.com": ("Bob", {"company": "Solo"}, []),
        "cy@example.com": ("Cy Young", {}, []),
        "hal@example.com": ("", {}, []),
        "ida@example.com": ("", {}, ["a", "b"]),
        "joy@example.com": ("Joy", {}, []),
    }
    consent = {
        email: (at.isoformat() if at.year == 2024 else "the import's time", ip)
        for email, at, ip in Subscription.objects.values_list(
            "profile__email", "consent_at", "consent_ip"
        )
    }
    assert consent == {
        "ada@example.com": ("2024-03-02T11:00:00+00:00", "203.0.113.9"),
        "bob@example.com": ("2024-03-01T10:00:00+00:00", "2001:db8::1"),
        "cy@example.com": ("the import's time", None),
        "hal@example.com": ("the import's time", "::1"),
        "ida@example.com": ("the import's time", None),
        "joy@example.com": ("the import's time", None),
    }
