"""The suppression list: who it holds, that they are never mailed, and the one way back."""

import csv
import io
import re
from urllib.parse import urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Subscription, Suppression
from signalpost.newsletters.services import (
    bounce_record,
    complaint_record,
    preferences_link_request,
    subscribe,
    subscription_confirm,
)
from signalpost.newsletters.suppressions import (
    address_is_suppressed,
    email_hash,
    suppressions_add,
)
from signalpost.privacy.services import profile_erase
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from signalpost.signals import address_suppressed, suppression_lifted
from tests.durable_helpers import run_form_requests, run_worker_until_idle
from tests.factories import make_newsletter, make_user
from tests.mail import text_part
from tests.recorders import SignalRecorder
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db(transaction=True)

Reason = Suppression.Reason


@pytest.fixture
def weekly(db):
    return make_newsletter(slug="weekly", name="The Weekly", opt_in="single")


@pytest.fixture
def monthly(db):
    return make_newsletter(slug="monthly", name="The Monthly", opt_in="single")


def suppress(email, reason, newsletter=None):
    return suppressions_add(entries=[(email, reason, None)], newsletter=newsletter, source="test")


def test_a_hard_bounce_suppresses_the_address_for_every_newsletter(weekly, monthly):
    subscribe(email="jane@example.com", newsletter=weekly, source="form")

    bounce_record(email="jane@example.com", permanent=True, description="550 no such user")

    row = Suppression.objects.get()
    assert (row.email, row.newsletter, row.reason, row.source) == (
        "jane@example.com",
        None,
        "bounced",
        "bounce",
    )
    # Not even a newsletter she was never on takes her back without her confirmation.
    assert subscribe(email="jane@example.com", newsletter=monthly, source="admin").status == (
        "pending"
    )


def test_a_complaint_suppresses_the_address_for_every_newsletter(weekly):
    subscribe(email="jane@example.com", newsletter=weekly, source="form")

    complaint_record(email="jane@example.com")

    assert Suppression.objects.get().reason == "complained"
    assert Suppression.objects.get().newsletter is None


def test_a_soft_bounce_below_the_limit_suppresses_nothing(weekly):
    subscribe(email="jane@example.com", newsletter=weekly, source="form")

    bounce_record(email="jane@example.com", permanent=False)

    assert not Suppression.objects.exists()


def test_neither_staff_nor_a_single_opt_in_form_activates_a_suppressed_address(weekly):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)

    by_staff = subscribe(email="jane@example.com", newsletter=weekly, source="admin")
    by_import = subscribe(email="ann@example.com", newsletter=weekly, source="import")

    assert by_staff.status == "pending", "she must confirm herself"
    assert Suppression.objects.filter(email="jane@example.com").exists()
    assert by_import.status == "active", "someone not suppressed is imported as ever"


def test_an_import_through_the_service_leaves_a_suppressed_address_alone(weekly):
    suppress("jane@example.com", Reason.CLEANED)

    subscription = subscribe(email="jane@example.com", newsletter=weekly, source="import")

    assert subscription.pk is None or subscription.status != "active"
    assert not Subscription.objects.filter(status="active").exists()


def test_a_suppressed_person_comes_back_only_by_confirming_the_email_they_are_sent(
    client, smtp_inbox, weekly
):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)
    with SignalRecorder(suppression_lifted) as lifted:
        response = client.post(
            "/subscribe/", {"user_email": "jane@example.com", "newsletter": "weekly"}
        )
        assert response.status_code == 200
        run_form_requests()
        assert Subscription.objects.get().status == "pending", "single opt-in, yet pending"
        assert lifted.calls == []
        run_worker_until_idle()
        [confirmation] = smtp_inbox.wait_for(1)
        assert confirmation["To"] == "jane@example.com"
        confirm = re.search(r"https://[^\s]+/n/weekly/confirm/[^\s]+/", text_part(confirmation))
        client.post(urlsplit(confirm.group(0)).path)

    assert Subscription.objects.get().status == "active"
    assert not Suppression.objects.exists()
    [call] = lifted.calls
    assert call["user_email"] == "jane@example.com" and call["newsletter"] == weekly


def test_confirming_one_newsletter_lifts_only_its_own_and_the_global_suppressions(weekly, monthly):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)
    suppress("jane@example.com", Reason.UNSUBSCRIBED, monthly)
    suppress("jane@example.com", Reason.BOUNCED)
    pending = subscribe(email="jane@example.com", newsletter=weekly, source="form")
    subscription_confirm(subscription=pending)

    assert {(row.newsletter_id, row.reason) for row in Suppression.objects.all()} == {
        (monthly.pk, "unsubscribed")
    }


def test_the_fan_out_skips_a_suppressed_address_even_with_an_active_subscription(weekly):
    for email in ("jane@example.com", "ann@example.com"):
        subscribe(email=email, newsletter=weekly, source="admin")
    # A row written past the services (a raw admin edit): the send must still skip it.
    Suppression.objects.create(
        email="jane@example.com",
        email_hash=email_hash("jane@example.com"),
        reason=Reason.COMPLAINED,
        source="test",
        suppressed_at="2024-01-01T00:00:00Z",
    )
    issue = issue_create(newsletter=weekly, subject="Hello", body_markdown="Hi.")

    issue_send_prepared(issue=issue)

    assert list(Delivery.objects.values_list("email", flat=True)) == ["ann@example.com"]


def test_suppressing_an_address_ends_its_live_subscriptions_and_tells_the_catalogue(
    weekly, monthly
):
    for newsletter in (weekly, monthly):
        subscribe(email="jane@example.com", newsletter=newsletter, source="admin")

    with SignalRecorder(address_suppressed) as recorded:
        added = suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)
        again = suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)

    assert (added, again) == (1, 0)
    assert dict(Subscription.objects.values_list("newsletter__slug", "status")) == {
        "weekly": "unsubscribed",
        "monthly": "active",
    }
    [call] = recorded.calls
    assert call == {
        "signal": address_suppressed,
        "emails": ["jane@example.com"],
        "newsletter": weekly,
        "reason": "unsubscribed",
        "source": "test",
    }


def test_no_preference_link_goes_to_an_address_that_bounced(weekly):
    subscribe(email="jane@example.com", newsletter=weekly, source="form")
    bounce_record(email="jane@example.com", permanent=True)

    assert preferences_link_request(email="jane@example.com") is False


def test_erasure_keeps_only_the_hash_and_the_address_stays_suppressed(tmp_path, weekly):
    subscribe(email="jane@example.com", newsletter=weekly, source="form")
    complaint_record(email="jane@example.com")

    profile_erase(profile=Profile.objects.get(email="jane@example.com"))

    row = Suppression.objects.get()
    assert row.email == ""
    assert row.email_hash == email_hash("jane@example.com")
    assert "jane" not in str(Suppression.objects.values().get())
    path = tmp_path / "again.csv"
    path.write_text("email\njane@example.com\n")
    out = io.StringIO()
    call_command("import_subscribers", str(path), "--newsletter=weekly", stdout=out)
    assert "0 imported" in out.getvalue() and "1 skipped" in out.getvalue()


@pytest.fixture
def staff(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def test_staff_find_and_export_the_suppression_list_erased_addresses_included(staff, weekly):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)
    suppress("=cmd@example.com", Reason.BOUNCED)
    suppress("gone@example.com", Reason.CLEANED)
    Suppression.objects.filter(email="gone@example.com").update(email="")

    page = staff.get("/admin/newsletters/suppression/")
    found = staff.get("/admin/newsletters/suppression/?q=jane")
    erased = staff.get("/admin/newsletters/suppression/?q=gone@example.com")
    export = staff.get("/admin/newsletters/suppression/export.csv?reason__exact=bounced")

    assert page.status_code == 200
    assert "Every newsletter" in page.content.decode()
    assert "jane@example.com" in found.content.decode()
    assert "=cmd@example.com" not in found.content.decode()
    assert "(erased; SHA-256" in erased.content.decode()
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(row["email"], row["reason"], row["newsletter"]) for row in rows] == [
        ("'=cmd@example.com", "bounced", "")
    ]
    assert staff.get("/admin/newsletters/suppression/add/").status_code == 403


def test_the_suppression_list_is_for_staff_only(client, weekly):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)

    response = client.get("/admin/newsletters/suppression/export.csv")

    assert response.status_code == 302
    assert "jane" not in response.content.decode()


def suppression_written_past_the_services(email, newsletter=None):
    """A suppression row whose live subscription was not ended (a raw admin edit, a row
    that slipped past): the count and the send must both leave the address out."""
    Suppression.objects.create(
        email=email,
        email_hash=email_hash(email),
        newsletter=newsletter,
        reason=Reason.UNSUBSCRIBED if newsletter else Reason.COMPLAINED,
        source="test",
        suppressed_at="2024-01-01T00:00:00Z",
    )


def test_the_send_page_counts_exactly_the_messages_that_arrive(staff, weekly, monthly, smtp_inbox):
    emails = ["ann@example.com", "bob@example.com", "cy@example.com", "di@example.com"]
    for email in emails:
        subscribe(email=email, newsletter=weekly, source="admin")
    suppression_written_past_the_services("bob@example.com")  # every newsletter
    suppression_written_past_the_services("cy@example.com", weekly)
    suppression_written_past_the_services("di@example.com", monthly)  # not this one
    issue = issue_create(newsletter=weekly, subject="Hello", body_markdown="Hi.")
    send_url = f"/admin/publishing/issue/{issue.pk}/send/"

    page = staff.get(send_url).content.decode()
    counted = int(re.search(r'<strong id="recipient-count">(\d+)</strong>', page).group(1))
    assert staff.post(send_url, {"send": "1"}).status_code == 302
    run_worker_until_idle()

    arrived = sorted(message["To"] for message in smtp_inbox.wait_for(counted))
    assert arrived == ["ann@example.com", "di@example.com"]
    assert counted == len(smtp_inbox.envelopes) == 2


def test_a_test_send_refuses_a_suppressed_address_by_name_and_the_others_still_go(
    staff, weekly, smtp_inbox
):
    suppress("jane@example.com", Reason.UNSUBSCRIBED, weekly)
    issue = issue_create(newsletter=weekly, subject="Hello", body_markdown="Hi.")

    response = staff.post(
        f"/admin/publishing/issue/{issue.pk}/test/",
        {"to_emails": "Jane@Example.com, proof@example.org"},
        follow=True,
    )

    shown = [str(message) for message in response.context["messages"]]
    assert "Test sent to proof@example.org." in shown
    assert (
        "Not sent to jane@example.com: this address is on the suppression list for The Weekly "
        "(it unsubscribed, bounced or complained) and is never mailed."
    ) in shown
    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["proof@example.org"]


def test_the_command_refuses_a_test_to_a_suppressed_address(weekly, smtp_inbox):
    suppress("jane@example.com", Reason.BOUNCED)
    issue_create(newsletter=weekly, subject="Hello", body_markdown="Hi.")

    with pytest.raises(
        CommandError, match=re.escape("Not sent to jane@example.com: this address is on")
    ):
        call_command("send_issue", "weekly", "hello", "--test-to", "jane@example.com")

    assert smtp_inbox.envelopes == []


def test_whether_an_address_is_suppressed_is_what_the_orm_says(weekly, monthly):
    """``address_is_suppressed`` asks by a written-out statement: the ORM's answer."""
    suppress("global@example.com", Reason.BOUNCED)
    suppress("weekly@example.com", Reason.UNSUBSCRIBED, newsletter=weekly)
    for address in ("global@example.com", "Weekly@Example.com", "nobody@example.com"):
        for newsletter in (weekly, monthly, None):
            covering = Q(newsletter__isnull=True)
            if newsletter is not None:
                covering |= Q(newsletter=newsletter)
            orm = Suppression.objects.filter(covering, email_hash=email_hash(address)).exists()
            found = address_is_suppressed(email=address, newsletter=newsletter)
            assert found == orm, (address, newsletter)
    assert address_is_suppressed(email="weekly@example.com", newsletter=weekly)
    assert not address_is_suppressed(email="weekly@example.com", newsletter=monthly)


def test_addresses_with_quotes_commas_and_braces_are_suppressed_and_their_subscriptions_end(
    weekly,
):
    """A batch's addresses go to the database as one array (``writes._text_array``): every
    character an address may hold stays itself, and only those addresses are matched."""
    odd = [
        "o'brien@example.com",
        "{curly}@example.com",
        '"quoted,comma"@example.com',
        '"back\\\\slash"@example.com',
        "null@example.com",
    ]
    for email in [*odd, "kept@example.com"]:
        subscribe(email=email, newsletter=weekly, source="admin")
    assert Subscription.objects.filter(status="active").count() == len(odd) + 1

    added = suppressions_add(
        entries=[(email, Reason.CLEANED, None) for email in odd],
        newsletter=weekly,
        source="test",
    )

    assert added == len(odd)
    assert sorted(Suppression.objects.values_list("email", flat=True)) == sorted(odd)
    assert all(address_is_suppressed(email=email, newsletter=weekly) for email in odd)
    assert dict(Subscription.objects.values_list("profile__email", "status")) == {
        **dict.fromkeys(odd, "bounced"),
        "kept@example.com": "active",
    }
    # Again: each is found on the list already, nothing is added twice.
    assert (
        suppressions_add(
            entries=[(email, Reason.CLEANED, None) for email in odd], newsletter=weekly, source="t"
        )
        == 0
    )
