"""Email as SMTP carries it: message bytes and one SMTP exchange, without the email package.

Python's ``email`` package spends ~4-6 ms of CPU building and serialising one
multipart message (every header parsed through ``headerregistry``, bodies
quoted-printable-encoded in pure Python): more than everything else a worker
does to send it (bench/README.md, Fan-out). The messages Signalpost sends have
one shape: a few headers and a text part with an HTML alternative. Their bytes
are assembled here, with the email package used only for headers that need
encoding or folding, and the result says what Django's message would say
(tests/test_issue_email_bytes.py parses both and compares).
"""

import binascii
import email.policy
import re
import smtplib
import uuid
from email.utils import formatdate, make_msgid, parseaddr

from django.conf import settings
from django.core.mail.utils import DNS_NAME

# ListEmail's policy: folding only past RFC 5322's line limit keeps List-Unsubscribe a URL.
HEADER_POLICY = email.policy.SMTP.clone(max_line_length=998)
# A dot-atom local part and an ASCII domain: nothing that needs quoting, encoding or IDNA.
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
QUOTED_PRINTABLE = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"


def header_fold(name, value):
    """Return a header as the email package writes it: parsed, encoded, folded."""
    return HEADER_POLICY.fold_binary(*HEADER_POLICY.header_store_parse(name, value))


def header_line(name, value):
    """Return one header line, writing simple ASCII values without the email package."""
    plain = value.isascii() and "\r" not in value and "\n" not in value
    if plain and len(name) + len(value) < 990:
        return f"{name}: {value}\r\n".encode("ascii")
    return header_fold(name, value)


def address_is_plain(address):
    """True for a bare ASCII ``local@domain`` that needs no quoting, encoding or IDNA."""
    return len(address) < 320 and PLAIN_ADDRESS.fullmatch(address) is not None


def addresses_are_ascii(*addresses):
    """True when no address (``Name <addr>`` or bare) has a non-ASCII addr-spec.

    Django IDNA-encodes non-ASCII domains in address headers; such messages
    take Django's path instead.
    """
    return all(parseaddr(address)[1].isascii() for address in addresses)


def quoted_printable(text):
    """Encode a body part as quoted-printable with CRLF line ends (binascii: C, not Python)."""
    # Every line end as CRLF, a lone CR too: RFC 5321 allows no bare CR (SMTP smuggling).
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def date_line():
    return header_line("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME))


def alternative_bytes(*, header_block, text, html):
    """Return a multipart/alternative message: ``header_block`` (bytes), then both parts."""
    # Quoted-printable writes every "=" as "=3D", so no body can contain this boundary.
    boundary = f"==============={uuid.uuid4().hex}==".encode("ascii")
    return b"".join(
        [
            header_block,
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n',
            QUOTED_PRINTABLE,
            quoted_printable(text),
            b"\r\n--" + boundary + b'\r\nContent-Type: text/html; charset="utf-8"\r\n',
            QUOTED_PRINTABLE,
            quoted_printable(html),
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )


def message_bytes(message):
    """Return a one-recipient ``EmailMultiAlternatives`` with one HTML alternative as bytes.

    ``None`` for anything of another shape (attachments, several recipients,
    non-ASCII addresses): Django's own ``message()`` serves those.
    """
    alternatives = getattr(message, "alternatives", [])
    if (
        len(message.to) != 1
        or message.cc
        or message.bcc
        or message.attachments
        or len(alternatives) != 1
        or alternatives[0].mimetype != "text/html"
        or message.content_subtype != "plain"
        or not address_is_plain(message.to[0])
        or not addresses_are_ascii(message.from_email, *message.reply_to)
    ):
        return None
    extra = dict(message.extra_headers)
    lines = [
        b"MIME-Version: 1.0\r\n",
        header_fold("Subject", message.subject),
        header_fold("From", extra.pop("From", message.from_email)),
        f"To: {message.to[0]}\r\n".encode("ascii"),
    ]
    if message.reply_to:
        lines.append(header_fold("Reply-To", ", ".join(message.reply_to)))
    lines.append(date_line())
    extra.pop("To", None)
    extra.pop("Reply-To", None)
    if not any(name.lower() == "message-id" for name in extra):
        lines.append(header_line("Message-ID", make_msgid(domain=DNS_NAME.get_fqdn())))
    for name, value in extra.items():
        lines.append(header_line(name, str(value)))
    return alternative_bytes(
        header_block=b"".join(lines), text=message.body, html=alternatives[0].content
    )


class SMTPDataRefused(smtplib.SMTPDataError):
    """The server refused the DATA command itself, having accepted the recipient.

    Nothing of the message was seen yet, so the refusal is of the session (its
    sender, its client), like a refused MAIL FROM, and not of this recipient or
    message. A refusal after the data stays an ``SMTPDataError``.
    """


def smtp_send(smtp, *, sender, recipient, data, before_data=None):
    """``smtplib.SMTP.sendmail`` for one recipient, calling ``before_data()`` before the data.

    A server that offers PIPELINING (RFC 2920; every common MTA does) gets MAIL,
    RCPT and DATA in one write: one round trip instead of three. Raises what
    ``sendmail`` raises, so callers tell temporary from permanent refusals the
    same way.
    """

    def give_up(code):
        if code == 421:
            smtp.close()
        else:
            smtp._rset()

    smtp.ehlo_or_helo_if_needed()
    options = f" SIZE={len(data)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    if smtp.does_esmtp and smtp.has_extn("pipelining"):
        smtp.send(f"MAIL FROM:<{sender}>{options}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        replies = [smtp.getreply() for _ in range(3)]
        (mail_code, mail_response), (rcpt_code, rcpt_response), (data_code, _) = replies
        if data_code == 354 and (mail_code != 250 or rcpt_code not in (250, 251)):
            # RFC 2920 says DATA fails without a recipient; a server that accepts it
            # anyway gets an empty message for nobody.
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail_code != 250:
            give_up(mail_code)
            raise smtplib.SMTPSenderRefused(mail_code, mail_response, sender)
        if rcpt_code not in (250, 251):
            give_up(rcpt_code)
            raise smtplib.SMTPRecipientsRefused({recipient: (rcpt_code, rcpt_response)})
        if data_code != 354:
            give_up(data_code)
            raise SMTPDataRefused(*replies[2])
    else:
        code, response = smtp.mail(sender, [options.strip()] if options else [])
        if code != 250:
            give_up(code)
            raise smtplib.SMTPSenderRefused(code, response, sender)
        code, response = smtp.rcpt(recipient)
        if code not in (250, 251):
            give_up(code)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, response)})
        code, response = smtp.docmd("DATA")
        if code != 354:
            give_up(code)
            raise SMTPDataRefused(code, response)
    if before_data is not None:
        try:
            before_data()
        except BaseException:
            # Nothing is delivered until the final dot: a lone dot would deliver an
            # empty message, so drop the connection instead.
            smtp.close()
            raise
    smtp.send(dot_stuffed(data))
    code, response = smtp.getreply()
    if code != 250:
        give_up(code)
        raise smtplib.SMTPDataError(code, response)


def dot_stuffed(data):
    """The message as DATA carries it (RFC 5321 4.5.2), ending with the lone dot."""
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
