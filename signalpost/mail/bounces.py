"""What a message that came back to the bounce address says: ``report_read(raw)``.

The recipient comes from our VERP token when the message was sent to one
(``mail.verp``), else from the report itself. The verdict comes from an RFC
3464 delivery status notification when there is one (``Action`` and
``Status`` per recipient), else from flufl.bounce, Mailman's detectors for the
common non-standard formats (qmail, Exim, Postfix without DSN, Yahoo, AOL...).

- ``hard``: the address does not work (DSN ``failed`` with a 5.x.x status other
  than a full mailbox or an oversized message; flufl's permanent failures);
- ``soft``: delivery was given up for now (DSN ``failed`` with 4.x.x, a full
  mailbox, an oversized message);
- ``delayed``: still being tried (DSN ``delayed``, flufl's temporary failures):
  not a bounce, dropped;
- ``ignored``: understood and nothing to do (an auto-reply, a ``delivered`` or
  ``relayed`` report);
- ``unknown``: not understood. The caller leaves it in the mailbox and reports it.
"""

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from signalpost.mail import verp

HARD, SOFT, DELAYED, IGNORED, UNKNOWN = "hard", "soft", "delayed", "ignored", "unknown"
# Permanent by class, yet the mailbox may work again: counted as soft.
_SOFT_PERMANENT = ("5.2.2", "5.3.4")
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_ENVELOPE_HEADERS = (
    "To",
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Original-Recipient",
    "Cc",
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?(reply|response)|autoreply|vacation|"
    r"abwesenheit|absence|r[ée]ponse automatique)",
    re.IGNORECASE,
)
_DESCRIPTION_LENGTH = 300


@dataclass
class Report:
    """One returned message's meaning: ``kind`` and whom it is about."""

    kind: str
    recipients: list[str] = field(default_factory=list)
    verp: tuple[str, int] | None = None
    description: str = ""


def report_read(raw: bytes) -> Report:
    """Read one returned message (its bytes as the mailbox holds them)."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        return _report(message)
    except Exception as error:  # a broken message is "not understood", whatever broke
        return Report(UNKNOWN, description=f"unreadable: {type(error).__name__}")


def _report(message: Message) -> Report:
    named = _verp_recipient(message)
    statuses = _delivery_statuses(message)
    if statuses:
        kind, recipients, description = _verdict(statuses)
        return Report(kind, recipients, named, description)
    # Mail systems mark their bounces auto-replied too: only a person's mail is an auto-reply.
    if not _from_mail_system(message) and _is_auto_reply(message):
        return Report(IGNORED, verp=named, description="an automatic reply")
    temporary, permanent = all_failures(message)
    if permanent:
        recipients = sorted(_text(address) for address in permanent)
        return Report(HARD, recipients, named, "permanent failure (flufl.bounce)")
    if temporary:
        recipients = sorted(_text(address) for address in temporary)
        return Report(DELAYED, recipients, named, "temporary failure (flufl.bounce)")
    return Report(UNKNOWN, verp=named, description=_subject(message))


def _verp_recipient(message: Message) -> tuple[str, int] | None:
    for header in _ENVELOPE_HEADERS:
        values = [str(value) for value in message.get_all(header, [])]
        for _, address in getaddresses(values):
            named = verp.recipient_of(address)
            if named is not None:
                return named
    return None


def _delivery_statuses(message: Message) -> list[dict[str, str]]:
    """Per-recipient fields of an RFC 3464 report (lower-case names), or ``[]``."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):  # some MTAs send it unparsed: split by blank lines
            blocks = [email.message_from_string(block) for block in blocks.split("\n\n")]
        recipients = []
        for block in blocks or []:
            if not isinstance(block, Message):
                continue
            fields = {name.lower(): " ".join(str(value).split()) for name, value in block.items()}
            if "action" in fields and (
                "final-recipient" in fields or "original-recipient" in fields
            ):
                recipients.append(fields)
        return recipients
    return []


def _verdict(statuses: list[dict[str, str]]) -> tuple[str, list[str], str]:
    """The worst outcome of a report's recipients: hard, then soft, then delayed."""
    rank = {HARD: 0, SOFT: 1, DELAYED: 2, IGNORED: 3}
    found = []
    for fields in statuses:
        action = fields.get("action", "").lower()
        match = _STATUS.search(fields.get("status", ""))
        status = match.group(0) if match else ""
        if action == "failed":
            if status.startswith("5") and not status.startswith(_SOFT_PERMANENT):
                kind = HARD
            else:
                kind = SOFT
        elif action == "delayed":
            kind = DELAYED
        else:  # delivered, relayed, expanded
            kind = IGNORED
        recipient = fields.get("final-recipient") or fields.get("original-recipient", "")
        address = recipient.split(";", 1)[-1].strip().strip("<>")
        diagnostic = fields.get("diagnostic-code", "").split(";", 1)[-1].strip()
        found.append((rank[kind], kind, address, f"{status} {diagnostic}".strip()))
    found.sort()
    kind = found[0][1]
    recipients = sorted({address for _, k, address, _ in found if k == kind and address})
    return kind, recipients, found[0][3][:_DESCRIPTION_LENGTH]


def _is_auto_reply(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "")).lower()
    if auto.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_subject(message)))


def _from_mail_system(message: Message) -> bool:
    if message.get_content_type() == "multipart/report":
        return True
    sender = " ".join(str(value) for value in message.get_all("From", [])).lower()
    return any(name in sender for name in ("mailer-daemon", "postmaster", "mail delivery"))


def _subject(message: Message) -> str:
    return " ".join(str(message.get("Subject", "")).split())[:_DESCRIPTION_LENGTH]


def _text(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address
