"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

import email
import email.policy
import socket
import time

from aiosmtpd.controller import Controller


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler: accepts every message, refusing recipients in ``refuse`` and
    senders in ``refuse_senders``."""

    def __init__(self):
        self.envelopes = []
        self.refuse = set()
        self.refuse_senders = set()
        self.temporarily_refuse = {}
        # address -> the whole reply to its RCPT, e.g. "554 5.7.1 Rejected by policy".
        self.refuse_with = {}
        # Offer RFC 2920 PIPELINING in the EHLO reply, as Postfix, Exim and ESP relays do.
        self.pipelining = False
        # How many SMTP sessions said EHLO: one per connection.
        self.sessions = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.sessions += 1
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.lower() in self.refuse_senders:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse_with:
            return self.refuse_with[address.lower()]
        if address.lower() in self.refuse:
            # As Postfix does: the reply names the recipient it refuses.
            return f"550 5.1.1 <{address}>: Recipient address rejected: No such mailbox"
        if self.temporarily_refuse.get(address.lower(), 0) > 0:
            self.temporarily_refuse[address.lower()] -= 1
            return f"451 4.3.0 <{address}>: Recipient address rejected: Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"

    @property
    def messages(self):
        return [
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            for envelope in self.envelopes
        ]

    def to(self, address):
        return [message for message in self.messages if message["To"] == address]

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.envelopes) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def smtp_server_start(inbox=None):
    """Start an SMTP server on a free loopback port; return ``(controller, inbox, port)``."""
    inbox = Inbox() if inbox is None else inbox
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox, port


def smtp_mailers(port):
    """``MAILERS`` sending through Django's SMTP backend to the server on ``port``."""
    return {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 10},
        }
    }


def text_part(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message):
    return message.get_body(preferencelist=("html",)).get_content()
