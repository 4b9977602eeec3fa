"""DKIM signatures on every SMTP path, checked by dkimpy against the published key.

Messages go over real SMTP on loopback: each kind of email through
``message_send`` and an issue through its sending task (the fast fan-out path),
with non-ASCII names, addresses Django must IDNA-encode and long folded
headers. dkimpy verifies what arrived, with DNS answered by a stub from the key
``manage.py dkim_keygen`` wrote and printed.
"""

import re
from io import StringIO

import dkim as dkimpy
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.accounts.models import Profile
from signalpost.mail import dkim
from signalpost.mail.transport import message_send
from signalpost.newsletters.services import subscribe
from signalpost.publishing.services import issue_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.test_email_messages import KINDS, build, make_issue

pytestmark = pytest.mark.django_db(transaction=True)

REQUIRED = {
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
}


@pytest.fixture
def published(tmp_path, settings):
    """A key made by dkim_keygen, configured; return the TXT record it printed."""
    key_file = tmp_path / "dkim.pem"
    out = StringIO()
    call_command(
        "dkim_keygen",
        key_file=str(key_file),
        domain="news.example.com",
        selector="s2026",
        stdout=out,
        stderr=StringIO(),
    )
    line = out.getvalue()
    assert line.startswith("s2026._domainkey.news.example.com. IN TXT")
    record = "".join(re.findall(r'"([^"]*)"', line)).encode()
    settings.SIGNALPOST_DKIM_DOMAIN = "news.example.com"
    settings.SIGNALPOST_DKIM_SELECTOR = "s2026"
    settings.SIGNALPOST_DKIM_PRIVATE_KEY_FILE = str(key_file)
    settings.SIGNALPOST_DKIM_PRIVATE_KEY = ""
    return record


def verified(raw, record):
    """dkimpy's verdict on ``raw``, and the headers its signature covers."""

    def dns(name, timeout=5):
        return record if name == b"s2026._domainkey.news.example.com." else None

    verifier = dkimpy.DKIM(raw)
    try:
        ok = verifier.verify(dnsfunc=dns)
    except dkimpy.DKIMException:  # e.g. "body hash mismatch"
        ok = False
    return ok, set(verifier.include_headers or ())


@pytest.fixture
def newsletter_issue(db, settings):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    letter = make_newsletter(
        slug="cronica",
        name="La Crónica «semanal», with a name long enough to need folding in List-Id",
        sender_name='Редакция "Crónica"',
        sender_email="editors@news.example.com",
        reply_to="letters@news.example.com",
    )
    return make_issue(letter, "Ñandú sightings: a subject long enough to be folded when encoded")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("address", ["ann@example.com", "editor@bücher.example"])
def test_every_kind_of_email_arrives_signed_and_verifies(
    smtp_inbox, published, newsletter_issue, kind, address
):
    profile = Profile(pk=41, email=address, name="Zoë O'Brien")
    message_send(build(kind, issue=newsletter_issue, profile=profile))

    smtp_inbox.wait_for(1)
    [envelope] = smtp_inbox.envelopes
    ok, covered = verified(envelope.original_content, published)

    assert ok
    expected = (
        REQUIRED
        if kind != "preferences_link"
        else REQUIRED - {b"list-id", b"list-unsubscribe", b"list-unsubscribe-post"}
    )
    assert expected <= covered


def test_the_fan_out_path_signs_every_issue_message(smtp_inbox, published, newsletter_issue):
    for number in range(5):
        subscribe(
            email=f"r{number}@example.com", newsletter=newsletter_issue.newsletter, source="admin"
        )
    smtp_inbox.pipelining = True

    issue_send(issue=newsletter_issue)
    run_worker_until_idle()

    smtp_inbox.wait_for(5)
    assert len(smtp_inbox.envelopes) == 5
    for envelope in smtp_inbox.envelopes:
        ok, covered = verified(envelope.original_content, published)
        assert ok and covered >= REQUIRED


def test_a_header_added_or_changed_on_the_way_breaks_the_signature(
    smtp_inbox, published, newsletter_issue
):
    message_send(
        build("issue", issue=newsletter_issue, profile=Profile(pk=1, email="a@example.com"))
    )
    smtp_inbox.wait_for(1)
    raw = smtp_inbox.envelopes[0].original_content

    added = raw.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example/>\r\n\r\n", 1)
    changed = re.sub(
        rb"List-Unsubscribe: <[^>]+>", b"List-Unsubscribe: <https://evil.example/>", raw
    )
    body = raw.replace(b"Hello", b"Hullo", 1)

    assert verified(raw, published)[0]
    for tampered in (added, changed, body):
        assert tampered != raw
        assert not verified(tampered, published)[0]


def test_without_dkim_settings_nothing_is_signed(smtp_inbox, newsletter_issue):
    message_send(
        build("welcome", issue=newsletter_issue, profile=Profile(pk=1, email="a@example.com"))
    )

    [message] = smtp_inbox.wait_for(1)
    assert message["DKIM-Signature"] is None


@pytest.mark.parametrize(
    "settings_given",
    [
        {"DKIM_DOMAIN": "news.example.com"},
        {"DKIM_DOMAIN": "news.example.com", "DKIM_SELECTOR": "s", "DKIM_PRIVATE_KEY": "junk"},
        {"DKIM_DOMAIN": "x", "DKIM_SELECTOR": "s", "DKIM_PRIVATE_KEY_FILE": "/no/such/file"},
    ],
)
def test_half_a_dkim_configuration_is_refused_clearly(settings, settings_given):
    for name in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY", "DKIM_PRIVATE_KEY_FILE"):
        setattr(settings, f"SIGNALPOST_{name}", settings_given.get(name, ""))

    with pytest.raises(ImproperlyConfigured, match="DKIM"):
        dkim.signer()


def test_dkim_keygen_refuses_bad_names_and_never_overwrites(tmp_path):
    key_file = tmp_path / "k.pem"
    key_file.write_text("not a key")
    with pytest.raises(CommandError, match="--domain"):
        call_command(
            "dkim_keygen", key_file=str(tmp_path / "new.pem"), domain="a b; rm", stdout=StringIO()
        )
    with pytest.raises(CommandError, match="not a readable PEM"):
        call_command(
            "dkim_keygen",
            key_file=str(key_file),
            domain="example.org",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert key_file.read_text() == "not a key"
    assert not (tmp_path / "new.pem").exists()


@pytest.mark.parametrize(
    "body",
    [
        b"a  b \t c\t\r\n \r\n\r\n",
        b"x\r\n",
        b"",
        b"\r\n\r\n",
        b"a \r\nb\t\t\r\nc",
        b"a \t",
        b"\t\r\n",
    ],
)
def test_body_canonicalisation_matches_dkimpys(body):
    from dkim.canonicalization import Relaxed

    assert dkim._relaxed_body(body) == Relaxed.canonicalize_body(body)
