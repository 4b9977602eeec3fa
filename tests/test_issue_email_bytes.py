"""An issue's email as SMTP bytes must say exactly what Django's own message says.

Workers send the bytes ``PersonalMessage.as_bytes()`` assembles (several times
faster than Django's ``message().as_bytes()``); other mail backends get the
``EmailMultiAlternatives`` from ``PersonalMessage.email()``. A subscriber must
not be able to tell which path their message took.
"""

import email
import email.policy

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.newsletters.links import (
    PersonalLinks,
    absolute,
    preferences_path,
    unsubscribe_path,
)
from signalpost.publishing.models import Delivery
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import deliveries_claim, issue_create, issue_send
from signalpost.publishing.tasks import deliveries_send
from signalpost.smtp_wire import address_is_plain
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import html_part, text_part

pytestmark = pytest.mark.django_db

COMPARED_HEADERS = [
    "MIME-Version",
    "Subject",
    "From",
    "To",
    "Reply-To",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
]

BODY = (
    "Dear readers — «ça va?»\n\n"
    "A line that is well over seventy-six characters long, so quoted-printable has to break it"
    " softly somewhere.\n"
    ". a line starting with a dot\n"
    "From the start of a line, a word mail software used to mangle.\n"
    "Trailing spaces here   \n"
    "and a tab\tinside, an equals sign a=b, and 100% = 1.\n"
    "an old Mac line end\rand a doubled one\r\r\nthen\r.\rnothing smuggled\n"
    """
| table | cell |
|-------|------|
| ümlaut | 😀 |
"""
)


@pytest.fixture
def issue(db, settings):
    settings.SITE_URL = "https://news.example.com"
    newsletter = make_newsletter(
        slug="cronica",
        name="La Crónica «semanal», with a name long enough to need folding in List-Id",
        sender_name='Редакция "Crónica"',
        sender_email="editors@cronica.example.com",
        reply_to="letters@cronica.example.com",
    )
    return issue_create(
        newsletter=newsletter,
        subject="Ñandú sightings: a subject long enough to be folded over more than one line "
        "by the email package when it is encoded",
        body_markdown=BODY,
    )


def parsed(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def both_ways(issue, *, address, name):
    profile = Profile(pk=41, email=address, name=name)
    delivery = Delivery(pk=7, issue=issue, email=address)
    personal = IssueMessages(issue).personalise(delivery, profile=profile)
    django_bytes = personal.email().message(policy=email.policy.SMTP).as_bytes()
    return personal.as_bytes(), django_bytes


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("ann@example.com", "Ann"),
        ("o.brien+news@example.co.uk", "Seán O'Brien"),
        ("zoë@example.com", "Zoë"),
        ("editor@bücher.example", ""),
        ("quoted.name@example.com", 'Mallory "\r\nBcc: victim@example.com'),
    ],
)
def test_the_fast_bytes_say_what_djangos_message_says(issue, address, name):
    fast_bytes, django_bytes = both_ways(issue, address=address, name=name)
    fast, slow = parsed(fast_bytes), parsed(django_bytes)

    assert not fast.defects
    for part in fast.walk():
        assert not part.defects, part.defects
    for header in COMPARED_HEADERS:
        assert fast[header] == slow[header], header
    assert fast["Date"]
    assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
    assert text_part(fast) == text_part(slow)
    assert html_part(fast) == html_part(slow)
    assert "ümlaut | 😀" in text_part(fast)
    assert "Trailing spaces here   \n" in text_part(fast).replace("\r\n", "\n")


def test_the_fast_bytes_are_valid_smtp_data(issue):
    fast_bytes, _ = both_ways(issue, address="ann@example.com", name="Ann")

    assert fast_bytes.isascii()
    assert b"\r" not in fast_bytes.replace(b"\r\n", b""), "a bare CR would reach the server"
    lines = fast_bytes.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in fast_bytes.replace(b"\r\n", b"")
    header_block = fast_bytes.split(b"\r\n\r\n", 1)[0]
    # One-click unsubscribe: a plain <https://...> URL, never RFC 2047 encoded-words.
    assert b"\r\nList-Unsubscribe: <https://news.example.com/" in header_block
    assert b"=?utf-8?" not in header_block.split(b"List-Unsubscribe:")[1].split(b"\r\n")[0]


def test_a_name_typed_by_a_subscriber_cannot_add_a_header(issue):
    fast_bytes, _ = both_ways(
        issue, address="quoted.name@example.com", name="Mallory\r\nBcc: victim@example.com"
    )
    header_block = fast_bytes.split(b"\r\n\r\n", 1)[0]

    assert b"Bcc" not in header_block
    assert "victim@example.com" not in parsed(fast_bytes)["To"]


@pytest.mark.parametrize(
    ("address", "plain"),
    [
        ("ann@example.com", True),
        ("o.brien+news@example.co.uk", True),
        ("zoë@example.com", False),
        ("editor@bücher.example", False),
        ('"odd, person"@example.com', False),
        ("two@at@example.com", False),
        ("spa ce@example.com", False),
        ("new\nline@example.com", False),
        ("Name <ann@example.com>", False),
    ],
)
def test_only_bare_ascii_addresses_skip_the_address_parser(address, plain):
    assert address_is_plain(address) is plain


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_an_idn_recipient_is_sent_through_smtp_with_an_ascii_envelope(
    smtp_inbox, issue, pipelining
):
    smtp_inbox.pipelining = pipelining
    from signalpost.newsletters.services import subscribe

    subscribe(email="editor@bücher.example", newsletter=issue.newsletter, source="admin")
    subscribe(email="ann@example.com", name="Ann", newsletter=issue.newsletter, source="admin")
    assert issue_send(issue=issue) == 2
    run_worker_until_idle()

    messages = smtp_inbox.wait_for(2)
    envelopes = sorted(tuple(envelope.rcpt_tos) for envelope in smtp_inbox.envelopes)
    assert envelopes == [("ann@example.com",), ("editor@xn--bcher-kva.example",)]
    # As Django writes it: IDNA in the header too, since the message is not SMTPUTF8.
    assert sorted(message["To"] for message in messages) == [
        "ann@example.com",
        "editor@xn--bcher-kva.example",
    ]
    assert {envelope.mail_from for envelope in smtp_inbox.envelopes} == {
        "editors@cronica.example.com"
    }
    for message in messages:
        # Dot-stuffed on the way, unstuffed by the server: the line arrives as written.
        assert "\n. a line starting with a dot\n" in text_part(message).replace("\r\n", "\n")


def test_other_mail_backends_get_an_ordinary_django_message(settings, issue):
    from django.core import mail

    from signalpost.newsletters.services import subscribe

    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    subscribe(email="ann@example.com", name="Ann", newsletter=issue.newsletter, source="admin")
    mail.outbox = []
    assert issue_send(issue=issue) == 1
    ids = deliveries_claim(issue_id=issue.pk, claimer="test", limit=10)
    deliveries = list(Delivery.objects.filter(id__in=ids).select_related("profile"))

    outcome = deliveries_send(issue=issue, deliveries=deliveries)

    assert outcome["sent"] == 1
    [message] = mail.outbox
    assert message.to == ["ann@example.com"]
    assert message.extra_headers["List-Unsubscribe"].startswith("<https://news.example.com/")
    assert "Hello Ann," in message.body
    delivery = Delivery.objects.get(pk=ids[0])
    assert delivery.status == Delivery.Status.SENT
    assert abs((timezone.now() - delivery.sent_at).total_seconds()) < 60
    assert delivery.message_id == f"<issue-{issue.pk}.delivery-{delivery.pk}@news.example.com>"


def test_batch_links_are_the_links_each_message_would_get_alone(issue):
    profile = Profile.objects.create(email="ann@example.com", name="Ann")
    links = PersonalLinks(newsletter=issue.newsletter)

    assert links.unsubscribe_url(profile=profile) == absolute(
        unsubscribe_path(profile=profile, newsletter=issue.newsletter)
    )
    assert links.preferences_url(profile=profile) == absolute(preferences_path(profile=profile))


@pytest.mark.django_db(transaction=True)
def test_an_address_smtp_cannot_carry_fails_alone(smtp_inbox, issue):
    from signalpost.newsletters.models import Subscription
    from signalpost.newsletters.services import subscribe

    subscribe(email="ann@example.com", name="Ann", newsletter=issue.newsletter, source="admin")
    # Stored before validation was this strict: a non-ASCII local part needs SMTPUTF8.
    odd = Profile.objects.create(email="zoë@example.com")
    Subscription.objects.create(
        profile=odd, newsletter=issue.newsletter, status="active", source="import"
    )
    assert issue_send(issue=issue) == 2
    run_worker_until_idle()

    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["ann@example.com"]
    failed = Delivery.objects.get(issue=issue, email="zoë@example.com")
    assert failed.status == Delivery.Status.FAILED
    assert "553" in failed.last_error
    assert Delivery.objects.get(issue=issue, email="ann@example.com").status == "sent"


@pytest.mark.parametrize("kind", ["confirmation", "welcome"])
def test_subscription_emails_as_bytes_say_what_djangos_message_says(issue, kind):
    from signalpost.newsletters import emails
    from signalpost.smtp_wire import message_bytes

    profile = Profile.objects.create(email="ann@example.com", name="Ann «the reader»")
    message = emails.message_build(
        kind=kind,
        profile=profile,
        newsletter=issue.newsletter,
        context={"confirmation_url": "https://news.example.com/c/x/", "expires_days": 7},
        idempotency_key="key-1",
    )
    fast = parsed(message_bytes(message))
    slow = parsed(message.message(policy=email.policy.SMTP).as_bytes())

    assert not fast.defects
    for header in COMPARED_HEADERS:
        assert fast[header] == slow[header], header
    assert fast["Date"]
    assert text_part(fast) == text_part(slow)
    assert html_part(fast) == html_part(slow)


def test_messages_of_another_shape_are_left_to_django(issue):
    from django.core.mail import EmailMessage, EmailMultiAlternatives

    from signalpost.smtp_wire import message_bytes

    two = EmailMultiAlternatives("S", "body", "a@example.com", ["b@example.com", "c@example.com"])
    two.attach_alternative("<p>x</p>", "text/html")
    idn = EmailMultiAlternatives("S", "body", "a@example.com", ["editor@bücher.example"])
    idn.attach_alternative("<p>x</p>", "text/html")
    attached = EmailMultiAlternatives("S", "body", "a@example.com", ["b@example.com"])
    attached.attach_alternative("<p>x</p>", "text/html")
    attached.attach("notes.txt", "hello", "text/plain")

    assert message_bytes(EmailMessage("S", "body", "a@example.com", ["b@example.com"])) is None
    assert message_bytes(two) is None
    assert message_bytes(idn) is None
    assert message_bytes(attached) is None
    plain = EmailMultiAlternatives("S", "body", "a@example.com", ["b@example.com"])
    plain.attach_alternative("<p>x</p>", "text/html")
    # Without a Message-ID of its own it gets one, as Django's message would.
    assert parsed(message_bytes(plain))["Message-ID"]
