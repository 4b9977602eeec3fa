"""One builder for every email: subscription emails and issues alike.

A ``Letterhead`` holds what the messages of one send share (subject, sender,
reply-to and, for list mail, the newsletter's ``List-Id`` and RFC 8058
one-click headers) and folds those headers to bytes once; ``message()`` adds
one recipient's part (address, Message-ID, unsubscribe URL, bodies). A
``Message`` is then either Django's ``EmailMultiAlternatives`` (``email()``,
for anymail, the console, tests) or the bytes Django's SMTP backend would send
(``as_bytes()``), equal in every header and decoded part
(tests/test_email_messages.py parses both and compares).

Why bytes of our own: Python's ``email`` package spends ~4-6 ms of CPU building
and serialising one multipart message (every header parsed through
``headerregistry``, bodies quoted-printable-encoded in pure Python), more than
everything else a worker does to send it (bench/README.md, Fan-out). Here the
email package is used only for headers that need encoding or folding, and only
once per send for the shared ones.
"""

import binascii
import email.policy
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.timezone import get_current_timezone

from signalpost.conf import conf

ONE_CLICK = "List-Unsubscribe=One-Click"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
# ListEmail's policy: folding only past RFC 5322's line limit keeps List-Unsubscribe a URL.
_HEADER_POLICY = email.policy.SMTP.clone(max_line_length=998)
# A dot-atom local part and an ASCII domain: nothing that needs quoting, encoding or IDNA.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_QUOTED_PRINTABLE = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
# ((second, zone), the Date line): see _date_line.
_date_line_cached = (None, b"")


class ListEmail(EmailMultiAlternatives):
    """An email whose headers are not folded below RFC 5322's 998-character line limit.

    At the 78-character default, Python folds an unbreakable ``List-Unsubscribe``
    URL into RFC 2047 encoded-words, which mail providers do not read as a URL:
    one-click unsubscribe would silently stop working.
    """

    def message(self, *, policy=email.policy.default):
        return super().message(policy=policy.clone(max_line_length=998))


def header_safe(text: str) -> str:
    """Return ``text`` on one line without control characters: safe in any header."""
    return " ".join(_CONTROL_CHARACTERS.sub(" ", text).split())


def site_domain() -> str:
    """The host name of ``SITE_URL``: the right-hand side of Message-IDs and List-Ids."""
    return urlsplit(conf.SITE_URL).hostname or "localhost"


def newsletter_from(newsletter) -> str:
    """The From of ``newsletter``'s emails: its sender, else ``DEFAULT_FROM_EMAIL``."""
    if not newsletter.sender_email:
        return settings.DEFAULT_FROM_EMAIL
    return formataddr(
        (header_safe(newsletter.sender_name or newsletter.name), newsletter.sender_email)
    )


def list_id(newsletter) -> str:
    """Return the RFC 2919 ``List-Id``: the newsletter's name and ``<slug.site-domain>``."""
    name = header_safe(newsletter.name).replace('"', "").replace("<", "").replace(">", "")
    return f'"{name}" <{newsletter.slug}.{site_domain()}>'


def address_is_plain(address: str) -> bool:
    """True for a bare ASCII ``local@domain`` that needs no quoting, encoding or IDNA."""
    return len(address) < 320 and _PLAIN_ADDRESS.fullmatch(address) is not None


class Letterhead:
    """What every message of one send shares, its headers folded to bytes once.

    ``newsletter`` makes it list mail: From and Reply-To are the newsletter's,
    and every message carries ``List-Id``, ``List-Unsubscribe`` and
    ``List-Unsubscribe-Post``. Without one (the preference-link email) the
    message is transactional: from ``DEFAULT_FROM_EMAIL``, no list headers.
    ``subject`` may be anything a person typed: it is put on one line.
    """

    def __init__(self, *, subject: str, newsletter=None):
        self.newsletter = newsletter
        self.subject = header_safe(subject)
        self.from_email = settings.DEFAULT_FROM_EMAIL
        self.reply_to: list[str] = []
        self.list_id = None
        shared = [("MIME-Version", "1.0"), ("Subject", self.subject)]
        if newsletter is not None:
            self.from_email = newsletter_from(newsletter)
            self.reply_to = [newsletter.reply_to] if newsletter.reply_to else []
            self.list_id = list_id(newsletter)
        shared.append(("From", self.from_email))
        if self.reply_to:
            shared.append(("Reply-To", ", ".join(self.reply_to)))
        if self.list_id is not None:
            shared += [("List-Id", self.list_id), ("List-Unsubscribe-Post", ONE_CLICK)]
        self.header_bytes = b"".join(_header_fold(name, value) for name, value in shared)
        self.body_lines = QuotedPrintableLines()
        # Django IDNA-encodes non-ASCII domains in address headers: such messages take its path.
        self.addresses_ascii = all(
            parseaddr(address)[1].isascii() for address in [self.from_email, *self.reply_to]
        )

    def message(
        self,
        *,
        to: str,
        message_id: str,
        text: str | None = None,
        html: str | None = None,
        bodies: "Bodies | None" = None,
        unsubscribe_url=None,
        envelope_sender=None,
    ) -> "Message":
        """Return the ``Message`` to ``to`` (a bare address) with these bodies.

        The bodies are ``text`` and ``html``, or ``bodies`` (a ``Bodies``: one
        that knows its quoted-printable form cheaper). ``unsubscribe_url`` is
        required for list mail and refused otherwise. ``envelope_sender`` (the
        SMTP ``MAIL FROM``, where bounces go) defaults to the From address.
        """
        if (self.list_id is None) != (unsubscribe_url is None):
            raise ValueError("unsubscribe_url goes with a newsletter's email, and only there")
        if bodies is None:
            if text is None or html is None:
                raise ValueError("a message needs text and html, or bodies")
            bodies = Bodies(text=text, html=html)
        return Message(
            self,
            to=to,
            message_id=message_id,
            unsubscribe_url=unsubscribe_url,
            bodies=bodies,
            envelope_sender=envelope_sender,
        )


class Bodies:
    """A message's two parts, plain text and HTML, as text and as quoted-printable bytes.

    A subclass may build either form lazily, or the bytes without the text
    (``publishing.rendering``): the bytes must be what ``quoted_printable``
    gives here for the same text.
    """

    def __init__(self, *, text: str, html: str):
        self.text = text
        self.html = html

    def quoted_printable(self, lines: "QuotedPrintableLines") -> tuple[bytes, bytes]:
        """Both parts quoted-printable-encoded, CRLF line ends, lines known to ``lines`` reused."""
        return quoted_printable(self.text, lines), quoted_printable(self.html, lines)


class Message:
    """One recipient's email: a Django message for any backend, or bytes for SMTP."""

    __slots__ = (
        "bodies",
        "envelope_sender",
        "letterhead",
        "message_id",
        "to",
        "unsubscribe_url",
    )

    def __init__(
        self, letterhead, *, to, message_id, unsubscribe_url, bodies, envelope_sender=None
    ):
        self.letterhead = letterhead
        self.envelope_sender = envelope_sender
        self.to = to
        self.message_id = message_id
        self.unsubscribe_url = unsubscribe_url
        self.bodies = bodies

    @property
    def text(self) -> str:
        return self.bodies.text

    @property
    def html(self) -> str:
        return self.bodies.html

    @property
    def subject(self) -> str:
        return self.letterhead.subject

    @property
    def from_email(self) -> str:
        return self.letterhead.from_email

    def headers(self) -> dict[str, str]:
        """The headers besides Subject, From, To, Reply-To and Date, as Django is given them."""
        headers = {"Message-ID": self.message_id}
        if self.unsubscribe_url is not None:
            headers["List-Id"] = self.letterhead.list_id
            headers["List-Unsubscribe"] = f"<{self.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = ONE_CLICK
        return headers

    def email(self) -> ListEmail:
        """Return it as ``EmailMultiAlternatives``, for backends other than SMTP (and tests)."""
        letterhead = self.letterhead
        message = ListEmail(
            subject=letterhead.subject,
            body=self.text,
            from_email=letterhead.from_email,
            to=[self.to],
            reply_to=letterhead.reply_to,
            headers=self.headers(),
        )
        message.attach_alternative(self.html, "text/html")
        if self.envelope_sender:
            # Django's SMTP backend ignores it; anymail passes it to ESPs that take one.
            message.envelope_sender = self.envelope_sender  # type: ignore[attr-defined]
        return message

    def as_bytes(self) -> bytes:
        """Return the message as Django's SMTP backend would send ``email()``, ~8x cheaper.

        Non-ASCII addresses need Django's IDNA handling: those go through ``email()``.
        """
        if not (self.letterhead.addresses_ascii and address_is_plain(self.to)):
            return self.email().message(policy=email.policy.SMTP).as_bytes()
        lines = [
            self.letterhead.header_bytes,
            f"To: {self.to}\r\n".encode("ascii"),
            _date_line(),
            _header_line("Message-ID", self.message_id),
        ]
        if self.unsubscribe_url is not None:
            lines.append(_header_line("List-Unsubscribe", f"<{self.unsubscribe_url}>"))
        text, html = self.bodies.quoted_printable(self.letterhead.body_lines)
        return _alternative_bytes(header_block=b"".join(lines), text=text, html=html)


def _date_line():
    """The Date line for now, as Django dates a message: in ``TIME_ZONE`` with
    ``EMAIL_USE_LOCALTIME``, else UTC. Formatted once a second: a batch sends hundreds."""
    global _date_line_cached
    zone = get_current_timezone() if settings.EMAIL_USE_LOCALTIME else UTC
    key = (int(time.time()), zone)
    cached_key, line = _date_line_cached
    if cached_key != key:
        line = _header_line("Date", format_datetime(datetime.fromtimestamp(key[0], zone)))
        _date_line_cached = (key, line)
    return line


def _header_fold(name, value):
    """Return a header as the email package writes it: parsed, encoded, folded."""
    return _HEADER_POLICY.fold_binary(*_HEADER_POLICY.header_store_parse(name, value))


def _header_line(name, value):
    """Return one header line, writing simple ASCII values without the email package."""
    plain = value.isascii() and "\r" not in value and "\n" not in value
    if plain and len(name) + len(value) < 990:
        return f"{name}: {value}\r\n".encode("ascii")
    return _header_fold(name, value)


class QuotedPrintableLines:
    """The quoted-printable form of body lines, each line encoded once per send.

    Quoted-printable encodes each line on its own (a soft break never joins two
    lines), so a message is the concatenation of its lines' encodings. The
    messages of one send share all their lines but the few that carry a
    reader's name or links, and encoding a whole 10 kB message was a fifth of
    the sender's CPU (bench/README.md, "Fan-out at 1,000,000"). Lines are kept
    up to ``limit``: the template's lines come first, and a send's personal
    lines, each seen once, stop being kept once it is full.
    """

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self.encoded: dict[bytes, bytes] = {}

    def encode(self, data: bytes) -> bytes:
        """``binascii.b2a_qp(data, istext=True)`` with CRLF line ends; ``data`` ends with LF."""
        encoded = self.encoded
        parts = []
        for line in data[:-1].split(b"\n"):
            part = encoded.get(line)
            if part is None:
                part = _quoted_printable_line(line)
                if len(encoded) < self.limit:
                    encoded[line] = part
            parts.append(part)
        return b"".join(parts)


class QuotedPrintableTemplate:
    """A body part whose messages differ in a few lines, the others encoded once.

    ``text`` is the part as rendered for a whole send, with placeholders where
    each reader's copy differs; ``personal`` matches them. Quoted-printable
    encodes each line on its own, so the runs of lines without a placeholder are
    encoded once, each run into one piece of bytes, and a reader's copy only
    personalises and encodes the lines with one (``encode``): a few lines of
    ~90, where encoding every line, even from ``QuotedPrintableLines``' cache,
    was the largest part of building a message (bench/README.md, Fan-out).

    The bytes are ``quoted_printable(personalise(text))``'s, which needs the
    line ends to be where ``text`` has them: a ``text`` with a CR is not
    ``usable`` (line ends would move when CRLF and lone CRs become LF), and
    ``encode`` returns ``None`` when a personalised line holds a line break, or
    when the last line, with no LF after it, personalises to nothing (the whole
    text then ends with the LF before it, and gets no empty last line). The
    caller then encodes the whole text instead.
    """

    def __init__(self, text: str, personal: re.Pattern[str]):
        self.usable = "\r" not in text
        # Each run of fixed lines as its bytes, each personal line as its text.
        self.pieces: list[bytes | str] = []
        self.open_end = not text.endswith("\n")
        if not self.usable:
            return
        run: list[bytes] = []
        for line in (text if self.open_end else text[:-1]).split("\n"):
            if personal.search(line) is None:
                run.append(_quoted_printable_line(line.encode("utf-8")))
                continue
            if run:
                self.pieces.append(b"".join(run))
                run = []
            self.pieces.append(line)
        if run:
            self.pieces.append(b"".join(run))

    def encode(self, personalise: Callable[[str], str]) -> bytes | None:
        """``quoted_printable(personalise(text))``, from the personal lines alone; ``None``
        where that cannot be told line by line (see the class). ``personalise`` must be
        a function of each line on its own: replacements that never span a line end."""
        parts = []
        line = None
        for piece in self.pieces:
            if isinstance(piece, bytes):
                parts.append(piece)
                line = None
                continue
            line = personalise(piece)
            if "\n" in line or "\r" in line:
                return None
            parts.append(_quoted_printable_line(line.encode("utf-8")))
        if self.open_end and line == "":
            return None
        return b"".join(parts)


def _quoted_printable_line(line: bytes) -> bytes:
    return binascii.b2a_qp(line + b"\n", quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def quoted_printable(text, lines=None):
    """Encode a body part as quoted-printable with CRLF line ends (binascii: C, not Python).

    With ``lines`` (a ``QuotedPrintableLines``), lines it has seen are not encoded again.
    """
    # Every line end as CRLF, a lone CR too: RFC 5321 allows no bare CR (SMTP smuggling).
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    if lines is not None:
        return lines.encode(data)
    return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def _alternative_bytes(*, header_block: bytes, text: bytes, html: bytes) -> bytes:
    """Return a multipart/alternative message: ``header_block``, then both parts (each
    quoted-printable, CRLF line ends)."""
    # Quoted-printable writes every "=" as "=3D", so no body can contain this boundary.
    boundary = f"==============={uuid.uuid4().hex}==".encode("ascii")
    return b"".join(
        [
            header_block,
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n',
            _QUOTED_PRINTABLE,
            text,
            b"\r\n--" + boundary + b'\r\nContent-Type: text/html; charset="utf-8"\r\n',
            _QUOTED_PRINTABLE,
            html,
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
