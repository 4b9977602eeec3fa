"""Handing a batch's messages to the mail server.

A batch sends one message after another over one connection. Three things keep
the sender's own path short: messages go to smtplib as bytes; MAIL, RCPT and
DATA share one round trip when the server offers PIPELINING; and the "sent"
mark of one message travels to PostgreSQL while the next message's envelope
is being accepted (``publishing.writes.SentMarks``, the batch sender's database
part; bench/README.md, Fan-out).
"""

import logging
import smtplib

from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

from signalpost.smtp_wire import address_is_plain, smtp_send

logger = logging.getLogger(__name__)


class Outlet:
    """Hands a batch's messages to the default mailer over the connection it opened.

    With Django's SMTP backend the message goes to smtplib as bytes, the sender's
    envelope address worked out once per batch rather than by the backend's
    address parser for every message; any other backend (an ESP through anymail,
    the console) gets an ordinary ``EmailMultiAlternatives``.
    """

    def __init__(self, mailer, messages):
        self.mailer = mailer
        self.envelope_from = None
        if isinstance(mailer, SmtpBackend):
            self.envelope_from = mailer.prep_address(messages.from_email)

    def send(self, message, *, before_data):
        """Send ``message``; ``before_data()`` runs once the server has accepted its envelope."""
        if self.envelope_from is None:
            before_data()
            self.mailer.send_messages([message.email()])
            return
        to = message.to
        if not address_is_plain(to):
            try:
                to = self.mailer.prep_address(to)
            except ValueError as error:
                # Not sendable without SMTPUTF8: fail this delivery, not the batch.
                reply = f"5.1.3 {error}".encode(errors="replace")
                raise smtplib.SMTPRecipientsRefused({to: (553, reply)}) from error
        smtp_send(
            self.mailer.connection,
            sender=self.envelope_from,
            recipient=to,
            data=message.as_bytes(),
            before_data=before_data,
        )
