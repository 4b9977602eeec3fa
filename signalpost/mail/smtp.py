"""One message's SMTP exchange: MAIL, RCPT and DATA, pipelined when the server allows.

``smtplib.SMTP.sendmail`` takes three round trips per message and cannot run
anything between the server's acceptance of the envelope and the data;
``smtp_send`` does both (``publishing.writes.SentMarks`` settles the previous
message's "sent" mark there).
"""

import contextlib
import smtplib


class SMTPDataRefused(smtplib.SMTPDataError):
    """The server refused the DATA command itself, having accepted the recipient.

    Nothing of the message was seen yet, so the refusal is of the session (its
    sender, its client), like a refused MAIL FROM, and not of this recipient or
    message. A refusal after the data stays an ``SMTPDataError``.
    """


def smtp_send(smtp: smtplib.SMTP, *, sender: str, recipient: str, data: bytes, before_data=None):
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
            _reset(smtp)

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
        # The commands the pipelined write sends, one at a time. (``smtp.mail`` and
        # ``smtp.rcpt`` would parse each address again with ``email.utils.parseaddr``:
        # ~6 % of a worker's CPU per confirmation email, bench/subscribe_worker.py.)
        code, response = smtp.docmd("MAIL", f"FROM:<{sender}>{options}")
        if code != 250:
            give_up(code)
            raise smtplib.SMTPSenderRefused(code, response, sender)
        code, response = smtp.docmd("RCPT", f"TO:<{recipient}>")
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
    smtp.send(_dot_stuffed(data))
    code, response = smtp.getreply()
    if code != 250:
        give_up(code)
        raise smtplib.SMTPDataError(code, response)


def _reset(smtp):
    """RSET after a refusal, so the connection serves the next message (as ``sendmail`` does).

    A server that has hung up is left for the next command to report, as
    ``sendmail``'s own reset does: the refusal is what the caller must see.
    """
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def _dot_stuffed(data):
    """The message as DATA carries it (RFC 5321 4.5.2), ending with the lone dot."""
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
