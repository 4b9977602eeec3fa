"""Bounces over plain SMTP: VERP return paths, and ``process_bounces`` reading the mailbox.

Issues go over real SMTP on loopback with a VERP envelope sender per delivery;
the bounces that come back are read from a Maildir and, through a real Dovecot
on loopback, over IMAP and POP3. Hard bounces end subscriptions, soft ones
count, delays and auto-replies change nothing and are removed, and a message
nothing understands stays in the mailbox and is reported.
"""

import imaplib
import mailbox
import os
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.accounts.models import Profile
from signalpost.mail import verp
from signalpost.mail.bounces import report_read
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create, issue_send
from tests import bounce_samples as samples
from tests.dovecot import (
    PASSWORD,
    USER,
    certificate_make,
    dovecot_missing,
    dovecot_start,
    dovecot_stop,
)
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

READERS = ["hard@example.com", "soft@example.com", "slow@example.com", "qmail@example.com"]


@pytest.fixture
def sent(smtp_inbox, settings):
    """An issue sent to READERS with VERP; return each reader's envelope sender."""
    settings.SIGNALPOST_BOUNCE_ADDRESS = "bounces@news.example.com"
    letter = make_newsletter(slug="weekly")
    for address in READERS:
        subscribe(email=address, newsletter=letter, source="admin")
    issue_send(issue=issue_create(newsletter=letter, subject="First light", body_markdown="x"))
    run_worker_until_idle()
    smtp_inbox.wait_for(len(READERS))
    return {envelope.rcpt_tos[0]: envelope.mail_from for envelope in smtp_inbox.envelopes}


def returned(senders):
    """The mixed returns of ``sent``'s issue, as its bounce mailbox would hold them."""
    return [
        samples.dsn(to=senders["hard@example.com"], recipient="hard@example.com", n=1),
        samples.dsn(
            to=senders["soft@example.com"],
            recipient="soft@example.com",
            status="5.2.2",
            diagnostic="552 5.2.2 Mailbox full",
            n=2,
        ),
        samples.dsn(
            to=senders["slow@example.com"],
            recipient="slow@example.com",
            action="delayed",
            status="4.4.1",
            n=3,
        ),
        # Sent to the plain bounce address: only the report says whom it is about.
        samples.qmail(to="bounces@news.example.com", recipient="qmail@example.com", n=4),
        samples.auto_reply(to=senders["slow@example.com"], n=5),
        samples.garbage(to="bounces@news.example.com", n=6),
    ]


def statuses():
    return dict(Subscription.objects.values_list("profile__email", "status"))


def assert_recorded(output):
    assert statuses() == {
        "hard@example.com": "bounced",
        "soft@example.com": "active",
        "slow@example.com": "active",
        "qmail@example.com": "bounced",
    }
    assert Profile.objects.get(email="soft@example.com").soft_bounce_count == 1
    assert Profile.objects.get(email="slow@example.com").soft_bounce_count == 0
    assert Delivery.objects.get(email="hard@example.com").status == "bounced"
    assert "Read 6 messages" in output
    assert "Question about my subscription 6" in output
    assert output.count("Not understood") == 1


def run(mailbox_url):
    out = StringIO()
    call_command("process_bounces", mailbox=mailbox_url, stdout=out)
    return out.getvalue()


def test_each_delivery_goes_with_its_own_signed_return_path(sent):
    deliveries = dict(Delivery.objects.values_list("email", "pk"))

    for address, sender in sent.items():
        assert sender.startswith("bounces+d") and sender.endswith("@news.example.com")
        assert verp.recipient_of(sender) == ("d", deliveries[address])
        assert verp.recipient_of(sender.upper()) == ("d", deliveries[address])
    assert len(set(sent.values())) == len(READERS)
    forged = sent["hard@example.com"].replace("+d", "+d1", 1)
    assert verp.recipient_of(forged) is None


def test_process_bounces_reads_a_maildir_and_leaves_only_what_it_did_not_understand(sent, tmp_path):
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in returned(sent):
        box.add(raw)

    output = run(f"maildir://{tmp_path / 'Maildir'}")

    assert_recorded(output)
    left = [message["Subject"] for message in mailbox.Maildir(tmp_path / "Maildir").values()]
    assert left == ["Question about my subscription 6"]


@pytest.fixture
def dovecot():
    missing = dovecot_missing()
    if missing is not None:
        if os.environ.get("SIGNALPOST_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"{missing} (SIGNALPOST_REQUIRE_DOVECOT=1)", pytrace=False)
        pytest.skip(missing)
    process, server = dovecot_start()
    yield server
    dovecot_stop(process, server)


def imap_append(server, messages):
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    client.login(USER, PASSWORD)
    for raw in messages:
        client.append("INBOX", None, None, raw)
    client.logout()


def imap_subjects(server):
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    client.login(USER, PASSWORD)
    client.select("INBOX")
    _, data = client.search(None, "ALL")
    subjects = []
    for number in data[0].split():
        _, fetched = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects.append(fetched[0][1].decode().split(":", 1)[1].strip())
    client.logout()
    return subjects


@pytest.mark.parametrize("scheme", ["imap", "pop3", "imaps", "pop3s"])
def test_process_bounces_reads_a_real_dovecot_over_imap_and_pop3_with_or_without_tls(
    sent, dovecot, scheme, settings
):
    # The TLS variants trust the test server's self-signed certificate, and only it.
    settings.SIGNALPOST_BOUNCE_MAILBOX_CA_FILE = dovecot.ca_file
    imap_append(dovecot, returned(sent))

    output = run(dovecot.url(scheme))

    assert_recorded(output)
    assert imap_subjects(dovecot) == ["Question about my subscription 6"]


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_a_certificate_that_does_not_verify_is_a_clear_error_and_nothing_is_read(
    db, dovecot, scheme, settings, tmp_path
):
    imap_append(dovecot, [samples.garbage(to="bounces@news.example.com", n=1)])
    # The system's CAs do not know the test server's self-signed certificate.
    settings.SIGNALPOST_BOUNCE_MAILBOX_CA_FILE = ""
    with pytest.raises(CommandError, match="certificate does not verify") as refused:
        run(dovecot.url(scheme))
    assert "BOUNCE_MAILBOX_CA_FILE" in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert PASSWORD not in str(refused.value)

    # Another self-signed certificate, for the same name, is no better.
    other = tmp_path / "other"
    other.mkdir()
    certificate_make(other)
    settings.SIGNALPOST_BOUNCE_MAILBOX_CA_FILE = str(other / "cert.pem")
    with pytest.raises(
        CommandError, match=f"does not verify against the CA file {re.escape(str(other))}"
    ):
        run(dovecot.url(scheme))

    settings.SIGNALPOST_BOUNCE_MAILBOX_CA_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(CommandError, match=r"cannot use the CA file .*missing\.pem"):
        run(dovecot.url(scheme))
    assert len(imap_subjects(dovecot)) == 1, "nothing read, nothing deleted"


def test_a_wrong_password_or_a_dead_server_is_a_clear_error(dovecot):
    wrong = dovecot.url("imap").replace("a%20secret", "wrong", 1)
    for url in (
        wrong,
        wrong.replace("imap", "pop3", 1).replace(str(dovecot.imap_port), str(dovecot.pop3_port)),
    ):
        with pytest.raises(CommandError, match="--mailbox: cannot read"):
            run(url)
    assert PASSWORD not in str(wrong)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/", "must start with one of"),
        ("imap://127.0.0.1/", "needs user:password@host"),
        ("pop3://user@127.0.0.1/", "needs user:password@host"),
        ("imap://u:p@127.0.0.1:99999/", "port"),
        ("imap://u:p@127.0.0.1:1/", "cannot read"),
        ("maildir:///no/such/maildir", "is not a Maildir"),
        ("", "--mailbox is required"),
    ],
)
def test_bad_mailbox_urls_are_refused_naming_the_option(db, url, message):
    with pytest.raises(CommandError, match=message):
        run(url)


def test_hostile_and_broken_messages_are_not_understood_and_kept(db, tmp_path, settings):
    settings.SIGNALPOST_BOUNCE_ADDRESS = "bounces@news.example.com"
    box = mailbox.Maildir(tmp_path / "M", create=True)
    hostile = [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n" * 50,
        samples.dsn(to="bounces+d1-aaaaaaaaaaaa@news.example.com", recipient="x@example.com")
        .replace(b"Final-Recipient", b"X-Nothing")
        .replace(b"Original-Recipient", b"X-Nothing")
        .replace(b"<x@example.com>", b"someone"),
        b"Subject: " + b"A" * 100_000 + b"\r\n\r\nbody",
    ]
    for raw in hostile:
        box.add(raw)

    output = run(f"maildir://{tmp_path / 'M'}")

    assert output.count("Not understood") == len(hostile)
    assert len(mailbox.Maildir(tmp_path / "M")) == len(hostile)


def test_report_read_classifies_what_a_bounce_says():
    to = "bounces@news.example.com"
    assert report_read(samples.dsn(to=to, recipient="a@x.org")).kind == "hard"
    assert report_read(samples.dsn(to=to, recipient="a@x.org", status="4.2.2")).kind == "soft"
    assert report_read(samples.dsn(to=to, recipient="a@x.org", status="5.2.2")).kind == "soft"
    delayed = samples.dsn(to=to, recipient="a@x.org", action="delayed", status="4.4.7")
    assert report_read(delayed).kind == "delayed"
    assert report_read(samples.qmail(to=to, recipient="q@x.org")).recipients == ["q@x.org"]
    assert report_read(samples.auto_reply(to=to)).kind == "ignored"
    assert report_read(samples.garbage(to=to)).kind == "unknown"


def test_the_workers_read_the_bounce_mailbox_on_their_heartbeat(sent, tmp_path, settings):
    from signalpost.durable.maintenance import chores_forget
    from signalpost.durable.signals import worker_beat

    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in returned(sent):
        box.add(raw)
    settings.SIGNALPOST_BOUNCE_MAILBOX_URL = f"maildir://{tmp_path / 'Maildir'}"
    settings.SIGNALPOST_BOUNCE_POLL_SECONDS = 60
    chores_forget()

    worker_beat.send(sender=None, worker_id="w1")
    worker_beat.send(sender=None, worker_id="w1")  # within the interval: not queued again
    run_worker_until_idle()

    assert statuses()["hard@example.com"] == "bounced"
    assert len(mailbox.Maildir(tmp_path / "Maildir")) == 1


@pytest.mark.parametrize("secret", ["s" * 64, "another secret, non-ASCII: ñandú"])
def test_the_return_path_mac_is_djangos_salted_hmac(settings, secret):
    """The return path's MAC keeps its key per SECRET_KEY; it must stay Django's
    ``salted_hmac``, or bounces of emails sent before an upgrade would not be matched."""
    import base64

    from django.utils.crypto import salted_hmac

    settings.SECRET_KEY = secret
    for kind, number in [("d", "1"), ("p", "zz9"), ("d", "3w5e11264sgsf")]:
        digest = salted_hmac(verp._SALT, f"{kind}{number}", algorithm="sha256").digest()
        expected = base64.b32encode(digest).decode("ascii").lower()[:12]
        assert verp._mac(kind, number) == expected
