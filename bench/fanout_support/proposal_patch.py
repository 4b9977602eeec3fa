"""A PROPOSAL, measured with ``bench/fanout.py --patch``: not Signalpost code, not applied.

Four changes to how a batch sends, applied to a worker by monkeypatching after
``django.setup()`` (``fanout_support/worker.py``). ``BENCH_FAST`` picks them, a
comma-separated subset of ``mime,updates,direct,finish`` (the default: all four).

``mime``: build each recipient's message as bytes instead of through Django's
``EmailMultiAlternatives.message()``. That call costs ~5 ms of CPU per message here, and
``as_bytes()`` ~1.5 ms more: Python's ``email`` package parses every one of the ~18
headers through ``headerregistry`` (which creates a class per lookup), re-folds them all,
and quoted-printable-encodes both bodies in pure Python (``quoprimime``). Here
``IssueMessages`` folds the headers shared by every recipient once per batch with the
same ``email.policy.SMTP``, and each message is a few ``str.replace`` as today, the two
bodies encoded with ``binascii.b2a_qp`` (C) and four plain header lines (To, Date,
Message-ID, List-Unsubscribe). Parsed back with ``email.policy.default``, the messages have
the same headers and the same decoded bodies as Django's (checked on 50 recipients
while this was written). ``List-Unsubscribe`` becomes a plain ``<url>`` on a continuation
line; Django's path writes it as RFC 2047 encoded-words, because the URL is longer than
a line and cannot be folded. Django's SMTP backend still sends: it gets an object with
``recipients()``, ``from_email`` and ``message().as_bytes()``.

``updates``: ``delivery_sent()`` buffers, and one ``UPDATE ... FROM unnest(...)`` marks up
to 50 deliveries sent (or what 0.25 s gathered), flushed at the end of every
``deliveries_send()``. A worker killed mid-batch can then resend up to 50 messages
instead of 1 (same Message-ID each time, so receivers can de-duplicate).

``direct`` (with ``mime``): Django's SMTP backend parses the sender and the recipient of
every message again (``prep_address``: ``headerregistry`` once more, ~0.3 ms a message
here). The sender's envelope address is worked out once per batch, and a recipient that
is a plain ASCII address (validated when it subscribed) goes straight to
``smtplib.SMTP.sendmail`` on the backend's open connection; anything else (an IDN
domain, say) still goes through ``prep_address``.

``finish``: every batch ends with ``issue_finish_if_done()``, which locks the issue and
counts all its deliveries by status: a sequential scan of the whole list (~90 ms at
100,000 here) after each of the 200 batches, so quadratic in the list's size. Asking
first whether any delivery is still queued or sending (``exists()`` on the
``(issue, status)`` index) skips the lock and the count for every batch but the last;
the last one runs today's function unchanged, which checks again under the lock.
"""

import binascii
import email.policy
import html
import os
import time
import uuid
from email.utils import formatdate

from django.core.mail.backends.smtp import EmailBackend
from django.db import connection
from django.utils import timezone

from signalpost.newsletters.links import absolute, preferences_path, unsubscribe_path
from signalpost.publishing import tasks
from signalpost.publishing.models import Delivery
from signalpost.publishing.rendering import (
    PLACEHOLDER_EMAIL,
    PLACEHOLDER_NAME,
    PLACEHOLDER_PREFERENCES,
    PLACEHOLDER_UNSUBSCRIBE,
    IssueMessages,
)

POLICY = email.policy.SMTP
MODES = set(os.environ.get("BENCH_FAST", "mime,updates,direct,finish").split(","))
FLUSH_EVERY = 50
FLUSH_SECONDS = 0.25
TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\n'
HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\n'
QP = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"


def qp(text):
    """Quoted-printable, CRLF line ends, ending with a line break as email's set_content."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def plain_address(value):
    """An address that needs no quoting, encoding or folding in a header."""
    return value.isascii() and len(value) < 900 and not any(c in value for c in ',;"<>()\\\r\n')


class RawMessage:
    """What Django's SMTP backend needs of a message: recipients, sender, bytes."""

    def __init__(self, from_email, to, raw, message_id, envelope_from=None):
        self.from_email = from_email
        self.to = to
        self.raw = raw
        self.extra_headers = {"Message-ID": message_id}
        self.envelope_from = envelope_from

    def recipients(self):
        return self.to

    def message(self, policy=None):
        return self

    def as_bytes(self, *args, **kwargs):
        return self.raw


original_init = IssueMessages.__init__


def fast_init(self, issue):
    original_init(self, issue)
    headers = [("MIME-Version", "1.0"), ("Subject", self.subject), ("From", self.from_email)]
    if self.reply_to:
        headers.append(("Reply-To", ", ".join(self.reply_to)))
    headers += [("List-Id", self.list_id), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    self.static_headers = b"".join(POLICY.fold_binary(name, value) for name, value in headers)
    # Quoted-printable writes every "=" as "=3D": this boundary cannot occur in a body.
    self.boundary = ("===============" + uuid.uuid4().hex + "==").encode()
    # The backend's own parsing, once per batch instead of once per message.
    self.envelope_from = EmailBackend.prep_address(EmailBackend, self.from_email)


def fast_message_for(self, delivery, *, profile):
    unsubscribe = absolute(unsubscribe_path(profile=profile, newsletter=self.newsletter))
    preferences = absolute(preferences_path(profile=profile))
    name = f" {profile.name}" if profile.name else ""
    text = (
        self.text.replace(PLACEHOLDER_NAME, name)
        .replace(PLACEHOLDER_EMAIL, delivery.email)
        .replace(PLACEHOLDER_UNSUBSCRIBE, unsubscribe)
        .replace(PLACEHOLDER_PREFERENCES, preferences)
    )
    body_html = (
        self.html.replace(PLACEHOLDER_NAME, html.escape(name))
        .replace(PLACEHOLDER_EMAIL, html.escape(delivery.email))
        .replace(PLACEHOLDER_UNSUBSCRIBE, html.escape(unsubscribe))
        .replace(PLACEHOLDER_PREFERENCES, html.escape(preferences))
    )
    message_id = self.message_id(delivery)
    to = delivery.email
    to_line = f"To: {to}\r\n".encode() if plain_address(to) else POLICY.fold_binary("To", to)
    boundary = self.boundary
    raw = b"".join(
        [
            self.static_headers,
            to_line,
            f"Date: {formatdate(usegmt=True)}\r\nMessage-ID: {message_id}\r\n".encode(),
            f"List-Unsubscribe:\r\n <{unsubscribe}>\r\n".encode(),
            b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b"\r\n" + TEXT_PART + QP,
            qp(text),
            b"\r\n--" + boundary + b"\r\n" + HTML_PART + QP,
            qp(body_html),
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    direct = "direct" in MODES and plain_address(to)
    envelope_from = self.envelope_from if direct else None
    return RawMessage(self.from_email, [to], raw, message_id, envelope_from)


original_backend_send = EmailBackend._send


def direct_send(self, email_message):
    if getattr(email_message, "envelope_from", None):
        self.connection.sendmail(email_message.envelope_from, email_message.to, email_message.raw)
        return True
    return original_backend_send(self, email_message)


pending = []
flushed_at = [time.monotonic()]


def flush():
    if not pending:
        return
    ids, message_ids, stamps = (list(column) for column in zip(*pending, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} d "
            "SET status = %s, message_id = v.mid, sent_at = v.at "
            "FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::text[]) AS mid, "
            "unnest(%s::timestamptz[]) AS at) v WHERE d.id = v.id AND d.status = %s",
            [Delivery.Status.SENT, ids, message_ids, stamps, Delivery.Status.SENDING],
        )
    pending.clear()
    flushed_at[0] = time.monotonic()


def buffered_delivery_sent(*, delivery, message_id):
    pending.append((delivery.pk, message_id[:200], timezone.now()))
    if len(pending) >= FLUSH_EVERY or time.monotonic() - flushed_at[0] > FLUSH_SECONDS:
        flush()


original_deliveries_send = tasks.deliveries_send


def deliveries_send_then_flush(*, issue, deliveries):
    try:
        return original_deliveries_send(issue=issue, deliveries=deliveries)
    finally:
        flush()


original_finish = tasks.issue_finish_if_done


def finish_if_none_pending(*, issue_id):
    pending_statuses = [Delivery.Status.QUEUED, Delivery.Status.SENDING]
    if Delivery.objects.filter(issue_id=issue_id, status__in=pending_statuses).exists():
        return False
    return original_finish(issue_id=issue_id)


if "mime" in MODES:
    IssueMessages.__init__ = fast_init
    IssueMessages.message_for = fast_message_for
    if "direct" in MODES:
        EmailBackend._send = direct_send
if "updates" in MODES:
    tasks.delivery_sent = buffered_delivery_sent
    tasks.deliveries_send = deliveries_send_then_flush
if "finish" in MODES:
    tasks.issue_finish_if_done = finish_if_none_pending
