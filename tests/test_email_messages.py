"""Every email, built once (``signalpost.mail.messages``): its SMTP bytes are Django's message.

Workers and durable receivers send the bytes ``Message.as_bytes()`` assembles
over SMTP (several times cheaper than Django's ``message().as_bytes()``); other
mail backends get ``Message.email()``. A reader must not be able to tell which
path their message took: for every kind of email (confirmation, welcome,
preference link, issue, an issue's test), with ASCII and non-ASCII names,
addresses and subjects, a reply-to or none, a public or a private newsletter,
both parse strictly and are equal in every header (Date: both have one, in the
same zone) and in every part's type and decoded content. The transfer encoding
may differ: the bytes are always quoted-printable (7-bit clean).
"""

import binascii
import email
import email.policy
import random
import socketserver
import threading

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.mail.messages import (
    Letterhead,
    QuotedPrintableLines,
    address_is_plain,
    quoted_printable,
)
from signalpost.mail.transport import message_send
from signalpost.newsletters import emails
from signalpost.newsletters.links import (
    PersonalLinks,
    absolute,
    confirmation_path,
    preferences_path,
    unsubscribe_path,
)
from signalpost.newsletters.models import EmailTemplate
from signalpost.publishing.models import Delivery
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import deliveries_claim, issue_create, issue_send
from signalpost.publishing.tasks import deliveries_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import text_part
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db

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


def make_issue(newsletter, subject):
    return issue_create(newsletter=newsletter, subject=subject, body_markdown=BODY)


@pytest.fixture
def issue(db, settings):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    return make_issue(
        make_newsletter(
            slug="cronica",
            name="La Crónica «semanal», with a name long enough to need folding in List-Id",
            sender_name='Редакция "Crónica"',
            sender_email="editors@cronica.example.com",
            reply_to="letters@cronica.example.com",
        ),
        "Ñandú sightings: a subject long enough to be folded over more than one line "
        "by the email package when it is encoded",
    )


# Newsletters: non-ASCII everywhere with a reply-to; plain ASCII without one; private
# (no web link) with no sender of its own, so DEFAULT_FROM_EMAIL.
NEWSLETTERS = {
    "non-ascii, reply-to": None,  # the ``issue`` fixture's
    "ascii": {"slug": "weekly", "name": "The Weekly", "sender_email": "news@example.com"},
    "private": {"slug": "insiders", "name": "Insiders", "is_public": False},
}

# A non-ASCII local part is never sent: test_an_address_smtp_cannot_carry_fails_alone.
RECIPIENTS = [
    ("ann@example.com", "Ann"),
    ("o.brien+news@example.co.uk", "Seán O'Brien"),
    ("zoe@example.com", "Zoë"),
    ("editor@bücher.example", ""),
    ("quoted.name@example.com", 'Mallory "\r\nBcc: victim@example.com'),
]


def build(kind, *, issue, profile):
    """Return the ``Message`` of email ``kind`` to ``profile``, as the sending code builds it."""
    if kind == "issue":
        delivery = Delivery(pk=7, issue=issue, email=profile.email)
        return IssueMessages(issue).personalise(delivery, profile=profile)
    if kind == "issue test":
        delivery = Delivery(pk=0, issue=issue, email=profile.email)
        return IssueMessages(issue, subject_prefix="[Test] ").personalise(
            delivery, profile=profile, message_id=f"<issue-{issue.pk}.test-x@test>"
        )
    return emails.message_build(
        kind=kind,
        profile=profile,
        newsletter=None if kind == "preferences_link" else issue.newsletter,
        context={"confirmation_url": "https://news.example.com/c/x/", "expires_days": 7},
        idempotency_key="key-1",
    )


KINDS = ["confirmation", "welcome", "preferences_link", "issue", "issue test"]


def parsed(data):
    """``data`` parsed strictly: a defect the parser finds is an error."""
    message = email.message_from_bytes(data, policy=email.policy.strict)
    for part in message.walk():
        assert not part.defects, part.defects
        for name, value in part.items():
            assert not value.defects, (name, value.defects)
    return message


def headers(message):
    """Every header but Date, the multipart boundary (random) left out of Content-Type."""
    found = []
    for name, value in message.items():
        if name == "Date":
            continue
        if name == "Content-Type":
            params = {key: val for key, val in value.params.items() if key != "boundary"}
            value = f"{value.content_type} {sorted(params.items())}"
        found.append((name, str(value)))
    return sorted(found)


def parts(message):
    return [
        (part.get_content_type(), part.get_param("charset"), part.get_content())
        for part in message.walk()
        if not part.is_multipart()
    ]


def assert_same_email(fast, slow):
    assert headers(fast) == headers(slow)
    assert fast["Date"].datetime.utcoffset() == slow["Date"].datetime.utcoffset()
    assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
    assert parts(fast) == parts(slow)


@pytest.fixture(params=list(NEWSLETTERS))
def any_issue(request, issue):
    fields = NEWSLETTERS[request.param]
    if fields is None:
        return issue
    return make_issue(make_newsletter(**fields), "First issue")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("address", "name"), RECIPIENTS)
def test_the_bytes_say_what_djangos_message_says(any_issue, kind, address, name):
    message = build(kind, issue=any_issue, profile=Profile(pk=41, email=address, name=name))

    fast = parsed(message.as_bytes())
    slow = parsed(message.email().message(policy=email.policy.SMTP).as_bytes())

    assert_same_email(fast, slow)
    assert fast["To"] == slow["To"] != ""
    assert fast["Message-ID"] == message.message_id
    if kind in ("issue", "issue test"):
        assert "ümlaut | 😀" in text_part(fast)
        assert "Trailing spaces here\n" in text_part(fast).replace("\r\n", "\n")


def test_trailing_spaces_and_dots_survive_the_bytes():
    letterhead = Letterhead(subject="Spaces")
    body = "Trailing spaces here   \n. a dot\nand a tab\tinside, a=b\n"
    message = letterhead.message(to="ann@example.com", message_id="<m@x>", text=body, html="<p>")

    fast = parsed(message.as_bytes())

    assert text_part(fast).replace("\r\n", "\n") == body


@pytest.mark.parametrize("kind", KINDS)
def test_list_mail_has_list_headers_and_the_preference_link_none(issue, kind):
    message = build(kind, issue=issue, profile=Profile(pk=41, email="ann@example.com", name="Ann"))

    sent = parsed(message.as_bytes())

    if kind == "preferences_link":
        assert sent["List-Id"] is None and sent["List-Unsubscribe"] is None
        assert sent["From"] == "Signalpost <newsletters@localhost>"
        return
    assert (
        sent["List-Id"] == '"La Crónica «semanal», with a name long enough to need folding '
        'in List-Id" <cronica.news.example.com>'
    )
    assert sent["List-Unsubscribe"].startswith("<https://news.example.com/")
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent["Reply-To"] == "letters@cronica.example.com"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_email_arrives_through_smtp_as_djangos_message(
    smtp_inbox, issue, kind, pipelining
):
    smtp_inbox.pipelining = pipelining
    profile = Profile.objects.create(email="o.brien+news@example.co.uk", name="Seán O'Brien")
    message = build(kind, issue=issue, profile=profile)

    message_send(message)

    [envelope] = smtp_inbox.envelopes
    arrived = parsed(envelope.original_content)
    assert_same_email(arrived, parsed(message.email().message(policy=email.policy.SMTP).as_bytes()))
    assert envelope.rcpt_tos == ["o.brien+news@example.co.uk"]


@pytest.mark.django_db(transaction=True)
def test_a_line_starting_with_a_dot_arrives_as_written(smtp_inbox, issue):
    profile = Profile.objects.create(email="ann@example.com", name="Ann")

    message_send(build("issue", issue=issue, profile=profile))

    [arrived] = smtp_inbox.wait_for(1)
    # Dot-stuffed on the way, unstuffed by the server.
    assert "\n. a line starting with a dot\n" in text_part(arrived).replace("\r\n", "\n")


@pytest.mark.parametrize("kind", KINDS)
def test_the_bytes_are_valid_smtp_data(issue, kind):
    profile = Profile(pk=41, email="ann@example.com", name="Ann")
    data = build(kind, issue=issue, profile=profile).as_bytes()

    assert data.isascii()
    assert b"\r" not in data.replace(b"\r\n", b""), "a bare CR would reach the server"
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    if kind != "preferences_link":
        header_block = data.split(b"\r\n\r\n", 1)[0]
        # One-click unsubscribe: a plain <https://...> URL, never RFC 2047 encoded-words.
        assert b"\r\nList-Unsubscribe: <https://news.example.com/" in header_block
        assert b"=?utf-8?" not in header_block.split(b"List-Unsubscribe:")[1].split(b"\r\n")[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_typed_by_a_subscriber_cannot_add_a_header(issue, kind):
    profile = Profile(
        pk=41, email="quoted.name@example.com", name="Mallory\r\nBcc: victim@example.com"
    )
    data = build(kind, issue=issue, profile=profile).as_bytes()

    header_block = data.split(b"\r\n\r\n", 1)[0]
    # No header starts with the injected name: not a line of its own, not a folded one.
    header_names = {line.split(b":", 1)[0].lower() for line in header_block.split(b"\r\n")}
    assert b"bcc" not in header_names, header_block
    assert "Bcc" not in parsed(data), header_block
    assert b"\r\nBcc" not in header_block and b"\nBcc" not in header_block, header_block
    assert parsed(data)["To"] == "quoted.name@example.com"


@pytest.mark.parametrize("kind", KINDS)
def test_names_and_subjects_typed_by_staff_cannot_add_a_header(settings, kind):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    newsletter = make_newsletter(
        slug="sneaky",
        name="Sneaky\r\nBcc: victim@example.com",
        sender_name="Editors\nBcc: victim@example.com",
        sender_email="editors@example.com",
    )
    issue = make_issue(newsletter, "Subject")
    issue.subject = "Subject\r\nBcc: victim@example.com"  # stored before validation
    profile = Profile(pk=41, email="ann@example.com", name="Ann")
    message = build(kind, issue=issue, profile=profile)

    for data in (message.as_bytes(), message.email().message().as_bytes()):
        sent = parsed(data)
        assert sent["Bcc"] is None
        assert "\n" not in sent["Subject"]


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
    assert issue_send(issue=issue) is True
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
    assert issue_send_prepared(issue=issue) is True
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
    assert links.confirmation_url(profile=profile) == absolute(
        confirmation_path(profile=profile, newsletter=issue.newsletter)
    )


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
    assert issue_send(issue=issue) is True
    run_worker_until_idle()

    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["ann@example.com"]
    failed = Delivery.objects.get(issue=issue, email="zoë@example.com")
    assert failed.status == Delivery.Status.FAILED
    assert "553" in failed.last_error
    assert Delivery.objects.get(issue=issue, email="ann@example.com").status == "sent"


class HangsUpOnReset(socketserver.StreamRequestHandler):
    """An SMTP server that refuses every recipient and hangs up when asked to RSET."""

    def handle(self):
        self.wfile.write(b"220 ready\r\n")
        for line in self.rfile:
            command = line[:4].upper()
            if command == b"EHLO":
                self.wfile.write(b"250 ready\r\n")
            elif command == b"RCPT":
                self.wfile.write(b"550 5.1.1 No such mailbox\r\n")
            elif command == b"RSET":
                return
            else:
                self.wfile.write(b"250 OK\r\n")


def test_a_refusal_is_reported_even_if_the_server_then_hangs_up(settings):
    from signalpost.durable.exceptions import PermanentFailure
    from tests.mail import smtp_mailers

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), HangsUpOnReset)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MAILERS = smtp_mailers(server.server_address[1])
    profile = Profile.objects.create(email="ann@example.com")
    try:
        with pytest.raises(PermanentFailure, match="No such mailbox"):
            emails.email_preferences_link_send(profile=profile, idempotency_key="key-1")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("localtime", [False, True], ids=["utc", "local"])
def test_the_date_is_in_the_zone_djangos_message_uses(settings, issue, localtime):
    settings.EMAIL_USE_LOCALTIME = localtime
    settings.TIME_ZONE = "Asia/Kolkata"
    message = build("issue", issue=issue, profile=Profile(pk=41, email="ann@example.com"))

    fast = parsed(message.as_bytes())
    slow = parsed(message.email().message(policy=email.policy.SMTP).as_bytes())

    assert fast["Date"].datetime.utcoffset() == slow["Date"].datetime.utcoffset()
    assert abs((fast["Date"].datetime - slow["Date"].datetime).total_seconds()) < 5


def test_a_send_encodes_its_bodies_line_by_line_as_the_whole_text_encodes():
    # Lines that stress quoted-printable: long ones (soft breaks), trailing blanks,
    # lone dots, "=", tabs, non-ASCII, empty lines; every message repeats most of them.
    pieces = ["", " ", "\t", ".", "..", "=", "a=b", "é", "😀", "x" * 75, "y" * 76, "z" * 300]
    pieces += ["word " * 30, "trailing  ", "tab\t", ". ", "\u00a0nbsp"]
    rng = random.Random(24)
    lines = QuotedPrintableLines(limit=40)
    for _ in range(300):
        text = "\n".join(
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 12))
        )
        if rng.random() < 0.5:
            text += "\n"
        whole = binascii.b2a_qp(
            (text if text.endswith("\n") else text + "\n").encode(),
            quotetabs=False,
            istext=True,
        ).replace(b"\n", b"\r\n")

        assert quoted_printable(text, lines) == whole == quoted_printable(text)
    assert len(lines.encoded) == 40


# What subscribers type into their name, and addresses with characters quoted-printable
# escapes: every one of them must give the same bytes through a batch's templates as
# through encoding the whole personalised text.
HOSTILE_NAMES = [
    "Ann",
    "Zoë Ñandú 😀 Ærøskøbing",
    "a=b == =3D =\u00a0",
    "x" * 300,
    "trailing spaces   ",
    "trailing tab\t",
    "Mallory\r\nBcc: victim@example.com",
    "line\nbreak",
    "lone\rcarriage return",
    "ends with CR\r",
    "\nstarts with LF",
    ".",
    "<b>&amp; \"quoted\" 'single'</b>",
    " " * 80,
]
HOSTILE_ADDRESSES = ["ann@example.com", "a=b+c=d@example.com", f"{'l' * 64}@example.com"]
LINKED_BODY = (
    BODY
    + "\n\nRead [the long version](https://example.org/long?a=1&b=2), "
    + "then [another](https://example.org/"
    + "x" * 90
    + ").\n"
)


@pytest.fixture
def tracked_issue(db, settings):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    newsletter = make_newsletter(
        slug="tracked",
        name="Tracked",
        sender_email="news@example.com",
        track_clicks=True,
        track_opens=True,
        track_plain_text_links=True,
    )
    return issue_create(newsletter=newsletter, subject="Links", body_markdown=LINKED_BODY)


def general_bytes(message):
    """``message``'s bytes with its personalised text encoded whole, as before templates."""
    from signalpost.mail.messages import Bodies, Message

    whole = Message(
        message.letterhead,
        to=message.to,
        message_id=message.message_id,
        unsubscribe_url=message.unsubscribe_url,
        bodies=Bodies(text=message.text, html=message.html),
        envelope_sender=message.envelope_sender,
    )
    return whole.as_bytes()


@pytest.mark.parametrize("templates", ["as shipped", "crlf", "no final newline"])
def test_a_batch_builds_the_bytes_encoding_the_whole_text_builds_for_any_name(
    tracked_issue, monkeypatch, templates
):
    import uuid

    from signalpost.mail import messages as mail_messages

    if templates != "as shipped":
        # The newsletter's own templates, stored in the admin: CRLF line ends (what a
        # browser's textarea sends), or no line end after the last line.
        text = "Hello {{ name }},\n\n{{ body_text }}\n\nUnsubscribe: {{ unsubscribe_url }}"
        page = '<p>Hi {{ name }}</p>\n{{ body_html }}\n<a href="{{ unsubscribe_url }}">x</a>'
        if templates == "crlf":
            text, page = text.replace("\n", "\r\n") + "\r\n", page.replace("\n", "\r\n")
        for name, body in [("issue.txt", text), ("issue.html", page)]:
            EmailTemplate.objects.create(name=name, newsletter=tracked_issue.newsletter, body=body)
    from signalpost.publishing import rendering

    monkeypatch.setattr(mail_messages.uuid, "uuid4", lambda: uuid.UUID(int=24))
    monkeypatch.setattr(mail_messages, "_date_line", lambda: b"Date: fixed\r\n")
    # Which names took the whole text's encoding: those with a line break, and every
    # one with CRLF templates; the others must take the templates', or this proves nothing.
    whole_encoded = []
    encode_whole = rendering.quoted_printable
    monkeypatch.setattr(
        rendering,
        "quoted_printable",
        lambda text, lines=None: whole_encoded.append(name) or encode_whole(text, lines),
    )
    messages = IssueMessages(tracked_issue, tracking=True)
    number = 0
    for address in HOSTILE_ADDRESSES:
        for name in HOSTILE_NAMES:
            number += 1
            profile = Profile(pk=number, email=address, name=name)
            delivery = Delivery(pk=number, issue=tracked_issue, email=address)
            message = messages.personalise(delivery, profile=profile)

            fast = message.as_bytes()

            assert fast == general_bytes(message), (address, name)
            assert b"/c/" in fast
    breaks = {name for name in HOSTILE_NAMES if "\r" in name or "\n" in name}
    assert set(whole_encoded) == (set(HOSTILE_NAMES) if templates == "crlf" else breaks)
