"""Limits that keep one mailbox from being flooded and one client from acting for many."""

import pytest
from django.core.exceptions import ValidationError

from signalpost.accounts.models import Profile
from signalpost.accounts.services import email_normalize
from signalpost.newsletters.models import Subscription
from signalpost.ratelimit import client_bucket
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

# Each reaches victim@example.com: the SMTP envelope carries the domain's IDNA form, in
# which full-width letters, soft hyphens and zero-width characters vanish.
SPELLINGS_OF_ONE_MAILBOX = [
    "victim@example.com",
    "victim@example.com\u200b",
    "victim@exa\u00admple.com",
    "victim@exam\u200dple.com",
    "victim@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    '"victim"@example.com',
    "VICTIM@EXAMPLE.COM",
]


def subscribe_by_form(client, email, slug="careful", **extra):
    return client.post("/subscribe/", {"user_email": email, "newsletter": slug}, **extra)


def unsubscribe_by_form(client, email, slug="careful", **extra):
    return client.post("/unsubscribe/", {"user_email": email, "newsletter": slug}, **extra)


def no_rate_limits(settings):
    settings.SIGNALPOST_RATE_LIMITS = {key: "0" for key in settings.SIGNALPOST_RATE_LIMITS}


@pytest.mark.parametrize("spelling", SPELLINGS_OF_ONE_MAILBOX)
def test_every_spelling_of_a_mailbox_is_stored_as_one_address(spelling):
    assert email_normalize(spelling) == "victim@example.com"


def test_an_international_domain_is_kept_in_the_form_the_envelope_carries():
    assert email_normalize("Jane@B\u00fccher.de") == "jane@xn--bcher-kva.de"
    assert email_normalize("jane@xn--bcher-kva.de") == "jane@xn--bcher-kva.de"


def test_a_quoted_local_part_that_needs_its_quotes_keeps_them():
    assert email_normalize('"jane@home"@example.com') == '"jane@home"@example.com'


@pytest.mark.parametrize(
    "hostile",
    [
        "\u017fam@example.com",  # long s: validate_email's case-insensitive [A-Z] takes it
        "jane@exa..mple.com",
        "jane@" + "x" * 64 + ".com",
        "jane@" + "\u00fc" * 300 + ".com",
    ],
)
def test_addresses_no_mail_server_would_take_are_refused(hostile):
    with pytest.raises(ValidationError):
        email_normalize(hostile)


def test_spellings_of_one_mailbox_get_one_confirmation_email(
    client, smtp_inbox, double_opt_in_newsletter, settings
):
    # Only the confirmation window stands between the mailbox and a flood here.
    no_rate_limits(settings)
    for spelling in SPELLINGS_OF_ONE_MAILBOX:
        assert subscribe_by_form(client, spelling).status_code == 200
    run_worker_until_idle()

    assert [envelope.rcpt_tos for envelope in smtp_inbox.envelopes] == [["victim@example.com"]]
    assert list(Profile.objects.values_list("email", flat=True)) == ["victim@example.com"]


def test_the_per_address_limit_counts_every_spelling_as_one_address(
    client, double_opt_in_newsletter, settings
):
    settings.SIGNALPOST_RATE_LIMITS = {
        **settings.SIGNALPOST_RATE_LIMITS,
        "subscribe_ip": "0",
        "subscribe_address": "1/h",
    }
    make_newsletter(slug="second", opt_in="double")
    assert subscribe_by_form(client, "victim@example.com").status_code == 200
    assert subscribe_by_form(client, "victim@exa\u00admple.com", slug="second").status_code == 200
    # The second spelling was counted against the first: nothing was subscribed.
    assert Subscription.objects.filter(newsletter__slug="second").count() == 0


def test_a_form_shows_the_address_it_will_write_to(client, double_opt_in_newsletter):
    response = subscribe_by_form(client, "Jane@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com")
    assert response.status_code == 200
    assert "jane@example.com" in response.content.decode()


def test_an_address_with_a_lookalike_local_part_gets_a_400_naming_the_field(
    client, double_opt_in_newsletter
):
    response = subscribe_by_form(client, "\u017fam@example.com")
    assert response.status_code == 400
    assert "That is not a valid email address." in response.content.decode()
    assert Profile.objects.count() == 0


def test_leaving_and_coming_back_through_the_forms_sends_no_second_confirmation(
    client, smtp_inbox, double_opt_in_newsletter, settings
):
    no_rate_limits(settings)
    for _ in range(3):
        assert subscribe_by_form(client, "jane@example.com").status_code == 200
        run_worker_until_idle()
        assert unsubscribe_by_form(client, "jane@example.com").status_code == 200
    run_worker_until_idle()

    assert len(smtp_inbox.messages) == 1
    assert Subscription.objects.get().status == "unsubscribed"


def test_after_the_window_a_person_who_left_can_ask_again(
    client, smtp_inbox, double_opt_in_newsletter, settings
):
    no_rate_limits(settings)
    subscribe_by_form(client, "jane@example.com")
    run_worker_until_idle()
    unsubscribe_by_form(client, "jane@example.com")
    Subscription.objects.update(
        requested_at=Subscription.objects.get().requested_at.replace(year=2000)
    )

    subscribe_by_form(client, "jane@example.com")
    run_worker_until_idle()

    assert len(smtp_inbox.wait_for(2)) == 2
    assert Subscription.objects.get().status == "pending"


def test_one_client_cannot_unsubscribe_a_list_of_addresses(
    client, double_opt_in_newsletter, settings
):
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "unsubscribe_ip": "3/h"}
    statuses = [unsubscribe_by_form(client, f"p{n}@example.com").status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_the_addresses_of_one_ipv6_host_share_a_limit(client, double_opt_in_newsletter, settings):
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "subscribe_ip": "2/h"}
    statuses = [
        subscribe_by_form(
            client, f"p{n}@example.com", REMOTE_ADDR=f"2001:db8::{n + 1:x}"
        ).status_code
        for n in range(3)
    ]
    other_host = subscribe_by_form(client, "q@example.com", REMOTE_ADDR="2001:db8:0:1::1")
    assert statuses == [200, 200, 429]
    assert other_host.status_code == 200


def test_a_direct_request_behind_a_proxy_setting_is_counted_by_its_own_address(
    client, double_opt_in_newsletter, settings
):
    settings.SIGNALPOST_TRUSTED_PROXY_COUNT = 1
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "subscribe_ip": "1/h"}
    # Without X-Forwarded-For every such request once shared one count (of the key None).
    first = subscribe_by_form(client, "a@example.com", REMOTE_ADDR="192.0.2.1")
    second = subscribe_by_form(client, "b@example.com", REMOTE_ADDR="192.0.2.2")
    again = subscribe_by_form(client, "c@example.com", REMOTE_ADDR="192.0.2.1")
    assert [first.status_code, second.status_code, again.status_code] == [200, 200, 429]


@pytest.mark.parametrize(
    ("ip", "bucket"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, None),
    ],
)
def test_clients_are_counted_by_address_or_ipv6_network(ip, bucket):
    assert client_bucket(ip) == bucket


def test_profiles_stored_in_another_spelling_are_given_the_canonical_one():
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module(
        "signalpost.accounts.migrations.0004_profile_email_canonical"
    )
    Profile.objects.bulk_create(
        [
            Profile(email="jane@b\u00fccher.de"),
            Profile(email='"joe"@example.com'),
            Profile(email="victim@example.com"),
            Profile(email="victim@exa\u00admple.com"),
        ]
    )
    with connection.schema_editor() as schema_editor:
        migration.profiles_canonicalize(apps, schema_editor)

    assert sorted(Profile.objects.values_list("email", flat=True)) == [
        "jane@xn--bcher-kva.de",
        "joe@example.com",
        "victim@example.com",
        "victim@exa\u00admple.com",  # its canonical address has a profile: staff decide
    ]
