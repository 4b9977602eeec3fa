"""Handing built messages to the default mailer: bytes over SMTP, Django's message otherwise.

A ``Transport`` sends the messages of one ``Letterhead`` (a batch of an issue, or
one subscription email) over one connection of a mailer. With Django's SMTP
backend each message goes as ``Message.as_bytes()`` through ``smtp.smtp_send``
(pipelined, with a hook before the data), the envelope sender worked out once;
any other backend (an ESP through anymail, the console, locmem in tests) gets
``Message.email()``. Over SMTP each message is DKIM-signed when DKIM is
configured (``mail.dkim``) and goes with its own envelope sender when it has
one (VERP: ``Message.envelope_sender``). Either way a send raises what Django's SMTP backend
raises, so callers tell temporary from permanent refusals one way.
"""

import smtplib

from django.core.mail import mailers
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

from signalpost.mail import dkim
from signalpost.mail.messages import Letterhead, Message, address_is_plain
from signalpost.mail.smtp import smtp_send


class AddressNotCarried(smtplib.SMTPRecipientsRefused):
    """An address this connection cannot carry, refused here as a server would (553).

    Not a bounce: the address may well work through a server that speaks SMTPUTF8.
    """


class Transport:
    """Sends messages of one letterhead through ``mailer`` (default: the default mailer).

    Open it (``open()``, or use it as a context manager) before sending; ``send``
    raises the SMTP error of a message the server refused.
    """

    def __init__(self, letterhead: Letterhead, *, mailer=None):
        self.mailer = mailers.default if mailer is None else mailer
        self.envelope_from = None
        self.signer = None
        if isinstance(self.mailer, SmtpBackend):
            self.envelope_from = self.mailer.prep_address(letterhead.from_email)
            self.signer = dkim.signer()

    def open(self) -> None:
        """Connect to the mail server; raises ``SMTPException`` or ``OSError`` if unreachable."""
        self.mailer.open()

    def close(self) -> None:
        self.mailer.close()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def send(self, message: Message, *, before_data=None) -> None:
        """Send ``message``; ``before_data()`` runs once the server has accepted its envelope.

        An address SMTP cannot carry (a non-ASCII local part without SMTPUTF8) is
        refused as a server would refuse it, 553: it fails alone.
        """
        if self.envelope_from is None:
            if before_data is not None:
                before_data()
            self.mailer.send_messages([message.email()])
            return
        to = message.to
        if not address_is_plain(to):
            try:
                to = self.mailer.prep_address(to)
            except ValueError as error:
                reply = f"5.1.3 {error}".encode(errors="replace")
                raise AddressNotCarried({to: (553, reply)}) from error
        data = message.as_bytes()
        if self.signer is not None:
            data = self.signer.sign(data)
        smtp_send(
            self.mailer.connection,
            sender=message.envelope_sender or self.envelope_from,
            recipient=to,
            data=data,
            before_data=before_data,
        )


def message_send(message: Message) -> None:
    """Send one message over a connection of its own to the default mailer."""
    with Transport(message.letterhead) as transport:
        transport.send(message)
