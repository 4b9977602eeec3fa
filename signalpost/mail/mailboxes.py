"""Reading a mailbox message by message, and deleting what was handled: ``mailbox_open(url)``.

``maildir:///path``, ``imap://user:password@host[:port][/folder]``, ``imaps://...``,
``pop3://user:password@host[:port]`` and ``pop3s://...`` (user and password
percent-encoded). Messages are read one at a time, so memory stays flat however
many the mailbox holds. ``imaps`` and ``pop3s`` verify the server's certificate and
name against the system's CAs, or only against ``ca_file`` when given (a private
CA, or a self-signed certificate itself). ``delete(key)`` takes effect at once for a Maildir, at
``close()`` for IMAP (EXPUNGE) and POP3 (QUIT). A message not deleted stays as it was.
"""

import contextlib
import imaplib
import os
import poplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

SCHEMES = ("maildir", "imap", "imaps", "pop3", "pop3s")
TIMEOUT = 30
# IMAP: UIDs fetched per round trip.
_FETCH_CHUNK = 200


class MailboxError(Exception):
    """The mailbox cannot be opened or read; the message says why (never the password)."""


class Mailbox:
    def messages(self) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def mailbox_open(url: str, *, ca_file: str = "") -> Mailbox:
    """Open the mailbox ``url`` names; raise ``MailboxError`` for a bad URL or server, or a
    TLS certificate that does not verify (against ``ca_file`` when given)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MailboxError(f"the mailbox URL must start with one of {', '.join(SCHEMES)}://")
    if scheme == "maildir":
        return _Maildir(Path(unquote(parts.path)))
    if not parts.hostname or parts.username is None or parts.password is None:
        raise MailboxError(f"a {scheme}:// URL needs user:password@host")
    try:
        port = parts.port
    except ValueError:
        raise MailboxError("the mailbox URL's port is not a number from 1 to 65535") from None
    user, password = unquote(parts.username), unquote(parts.password)
    tls = _tls_context(ca_file) if scheme.endswith("s") else None
    try:
        if scheme.startswith("imap"):
            folder = unquote(parts.path.lstrip("/")) or "INBOX"
            return _Imap(tls, parts.hostname, port, user, password, folder)
        return _Pop3(tls, parts.hostname, port, user, password)
    except ssl.SSLCertVerificationError as error:
        trust = f"the CA file {ca_file}" if ca_file else "the system's CAs"
        raise MailboxError(
            f"cannot read {scheme}://{parts.hostname}: its TLS certificate does not verify "
            f"against {trust} ({error.verify_message}); for a private CA or a self-signed "
            "certificate, set BOUNCE_MAILBOX_CA_FILE to it (PEM)"
        ) from None
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as error:
        raise MailboxError(f"cannot read {scheme}://{parts.hostname}: {_said(error)}") from None


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context that verifies the certificate and the host name: against the
    system's CAs, or against ``ca_file`` (PEM) alone."""
    if not ca_file:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        said = getattr(error, "strerror", None) or _said(error)
        raise MailboxError(f"cannot use the CA file {ca_file}: {said}") from None


def _said(error: BaseException) -> str:
    text = error.args[0] if error.args else error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())[:200] or type(error).__name__


class _Maildir(Mailbox):
    def __init__(self, path: Path):
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise MailboxError(f"{path} is not a Maildir (it needs new/ and cur/)")
        self.path = path

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for folder in ("new", "cur"):
            with os.scandir(self.path / folder) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        data = Path(entry.path).read_bytes()
                    except FileNotFoundError:  # taken by another reader meanwhile
                        continue
                    yield f"{folder}/{entry.name}", data

    def delete(self, key: str) -> None:
        folder, _, name = key.partition("/")
        if folder in ("new", "cur") and "/" not in name:
            (self.path / folder / name).unlink(missing_ok=True)


class _Imap(Mailbox):
    def __init__(self, tls, host, port, user, password, folder):
        if tls is not None:
            self.client = imaplib.IMAP4_SSL(host, port or 993, ssl_context=tls, timeout=TIMEOUT)
        else:
            self.client = imaplib.IMAP4(host, port or 143, timeout=TIMEOUT)
        self.client.login(user, password)
        status, data = self.client.select(_quoted(folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"no folder {folder!r}: {_said(Exception(*data))}")
        self.deleted = 0

    def messages(self) -> Iterator[tuple[str, bytes]]:
        status, data = self.client.uid("SEARCH", "UNDELETED")
        if status != "OK":
            raise MailboxError("the IMAP server refused to search the folder")
        uids = data[0].split() if data and data[0] else []
        for start in range(0, len(uids), _FETCH_CHUNK):
            chunk = b",".join(uids[start : start + _FETCH_CHUNK]).decode("ascii")
            status, fetched = self.client.uid("FETCH", chunk, "(UID BODY.PEEK[])")
            if status != "OK":
                raise MailboxError("the IMAP server refused to fetch messages")
            for item in fetched:
                if not isinstance(item, tuple):
                    continue
                meta = item[0].decode("ascii", "replace")
                uid = meta.split("UID ", 1)[1].split()[0].strip(")") if "UID " in meta else ""
                if uid:
                    yield uid, item[1]

    def delete(self, key: str) -> None:
        self.client.uid("STORE", key, "+FLAGS.SILENT", "(\\Deleted)")
        self.deleted += 1

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            if self.deleted:
                self.client.expunge()
            self.client.close()
            self.client.logout()


class _Pop3(Mailbox):
    def __init__(self, tls, host, port, user, password):
        if tls is not None:
            self.client = poplib.POP3_SSL(host, port or 995, context=tls, timeout=TIMEOUT)
        else:
            self.client = poplib.POP3(host, port or 110, timeout=TIMEOUT)
        self.client.user(user)
        self.client.pass_(password)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        count, _ = self.client.stat()
        for number in range(1, count + 1):
            _, lines, _ = self.client.retr(number)
            yield str(number), b"\r\n".join(lines) + b"\r\n"

    def delete(self, key: str) -> None:
        self.client.dele(int(key))

    def close(self) -> None:
        with contextlib.suppress(OSError, poplib.error_proto):
            self.client.quit()  # deletions happen here (RFC 1939 UPDATE state)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
