"""Addresses no confirmation email could ever reach are refused at every door: the
forms, the API and the import, each with a message that says why."""

from io import BytesIO

import pytest
from django.core.exceptions import ValidationError

from signalpost.accounts.models import Profile
from signalpost.accounts.services import email_normalize
from signalpost.api.tokens import api_token_create
from signalpost.newsletters.imports import email_check, subscribers_import
from signalpost.newsletters.models import Subscription

pytestmark = pytest.mark.django_db

# Each passes Django's validate_email (RFC 5321 allows them), and each made a
# confirmation task fail eight times over hours before it became a dead letter.
UNDELIVERABLE = {
    '"a\x0bb"@example.com': "control characters",
    '"a\x1b[31mred"@example.com': "control characters",
    '"a\\\x07"@example.com': "control characters",
    "a@[127.0.0.1]": "IP address",
    "a@[2001:db8::1]": "IP address",
    "a@localhost": "no dot",
    "A@LOCALHOST": "no dot",
}
STILL_ACCEPTED = [
    '"a@b"@example.com',
    "a@sub.example.co.uk",
    "a@xn--bcher-kva.de",
]


@pytest.mark.parametrize(("address", "reason"), UNDELIVERABLE.items())
def test_an_undeliverable_address_is_refused_saying_why(address, reason):
    with pytest.raises(ValidationError) as refusal:
        email_normalize(address)
    assert reason in refusal.value.messages[0]


@pytest.mark.parametrize("address", STILL_ACCEPTED)
def test_unusual_but_deliverable_addresses_are_still_accepted(address):
    assert email_normalize(address) == address.lower()


@pytest.mark.parametrize("address", UNDELIVERABLE)
def test_the_import_quick_check_refuses_them_too(address):
    with pytest.raises(ValidationError):
        email_check(address)


@pytest.mark.parametrize(("address", "reason"), UNDELIVERABLE.items())
def test_the_subscribe_form_answers_400_saying_why(client, newsletter, address, reason):
    response = client.post("/subscribe/", {"user_email": address, "newsletter": "weekly"})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert Profile.objects.count() == 0


@pytest.mark.parametrize(("address", "reason"), UNDELIVERABLE.items())
def test_the_api_answers_400_naming_email(client, newsletter, address, reason):
    token = api_token_create(name="tests")[1]
    response = client.post(
        "/api/v1/subscriptions",
        {"email": address, "newsletter": "weekly"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "email"
    assert reason in error["message"]
    assert Profile.objects.count() == 0


def test_the_import_reports_each_undeliverable_row_and_imports_the_rest(newsletter):
    rows = ["email,name", "ann@example.com,Ann"]
    for address in UNDELIVERABLE:
        quoted = '"' + address.replace('"', '""') + '"'
        rows.append(f"{quoted},Someone")
    rows.append("bob@example.com,Bob")
    content = "\n".join(rows) + "\n"

    report = subscribers_import(binary=BytesIO(content.encode()), newsletter=newsletter)

    assert (report.imported, report.rejected) == (2, len(UNDELIVERABLE))
    reasons = [rejection["reason"] for rejection in report.rejections]
    for reason, expected in zip(reasons, UNDELIVERABLE.values(), strict=True):
        assert expected in reason, report.rejections
    assert sorted(Subscription.objects.values_list("profile__email", flat=True)) == [
        "ann@example.com",
        "bob@example.com",
    ]
