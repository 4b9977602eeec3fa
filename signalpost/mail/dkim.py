"""DKIM signatures (RFC 6376, rsa-sha256, relaxed/relaxed) on the bytes we send over SMTP.

Optional: on when ``DKIM_DOMAIN``, ``DKIM_SELECTOR`` and a private key
(``DKIM_PRIVATE_KEY``, PEM, or ``DKIM_PRIVATE_KEY_FILE``) are set. Gmail and
Yahoo honour one-click unsubscribe only when a DKIM signature aligned with the
From domain covers ``List-Unsubscribe`` and ``List-Unsubscribe-Post``; every
header in ``SIGNED_HEADERS`` present in a message is signed, and those in
``OVERSIGNED`` once more, so a header of that name added on the way breaks the
signature instead of riding on it.

Why not ``dkim.sign`` of dkimpy: it does the RSA arithmetic in pure Python, 17 ms
per message here, which would cap a worker near 60 emails/s. The canonicalisation
below is the few lines RFC 6376 3.4.2 and 3.4.4 define, and the signature is
OpenSSL's (``cryptography``), ~0.8 ms; tests/test_dkim.py verifies every kind
of message with dkimpy against the public key.
"""

import base64
import hashlib
import re
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.core.exceptions import ImproperlyConfigured

from signalpost.conf import conf

SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
)
OVERSIGNED = ("from", "subject", "list-id", "list-unsubscribe", "list-unsubscribe-post")
_WSP_RUN = re.compile(rb"[ \t]+")
# Only the runs that change (two or more, or a tab): a lone space matched everywhere
# costs ~0.7 ms for a 10 kB body.
_WSP_TO_SPACE = re.compile(rb" [ \t]+|\t[ \t]*")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


class Signer:
    """Signs messages for ``domain`` with the RSA key ``private_key_pem`` under ``selector``."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: bytes):
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as error:
            raise ImproperlyConfigured(f"the DKIM private key cannot be read: {error}") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
            raise ImproperlyConfigured("the DKIM private key must be RSA, 1024 bits or more")
        self.key = key
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` (CRLF line ends) with a ``DKIM-Signature`` header first."""
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            head, body = message, b""
        fields = _header_fields(head + b"\r\n")
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        names, canonical = [], []
        used: dict[bytes, int] = {}
        for name in [*SIGNED_HEADERS, *OVERSIGNED]:
            key = name.encode("ascii")
            instances = fields.get(key, [])
            taken = used.get(key, 0)
            if taken < len(instances):
                # Bottom-up: the last instance first (RFC 6376 5.4.2).
                canonical.append(_relaxed_header(instances[len(instances) - 1 - taken]))
                used[key] = taken + 1
                names.append(key)
            elif name in OVERSIGNED:
                names.append(key)  # an absent instance: signs that there is none
        value = (
            b"v=1; a=rsa-sha256; c=relaxed/relaxed; d="
            + self.domain
            + b"; s="
            + self.selector
            + b"; t="
            + str(int(time.time())).encode("ascii")
            + b";\r\n\th="
            + b":".join(names)
            + b";\r\n\tbh="
            + body_hash
            + b";\r\n\tb="
        )
        header = b"DKIM-Signature: " + value
        signed = b"".join(canonical) + _relaxed_header(header + b"\r\n")[:-2]
        signature = base64.b64encode(self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256()))
        folded = b"\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        return header + folded + b"\r\n" + message

    def dns_record(self) -> tuple[str, str]:
        """The TXT record receivers look up: its name and its value."""
        return dns_record(self.key, domain=self.domain.decode(), selector=self.selector.decode())


def dns_record(key: rsa.RSAPrivateKey, *, domain: str, selector: str) -> tuple[str, str]:
    """The DKIM TXT record (name, value) publishing ``key``'s public half."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"{selector}._domainkey.{domain}", "v=DKIM1; k=rsa; p=" + base64.b64encode(
        public
    ).decode("ascii")


def signer() -> Signer | None:
    """The signer the settings describe, or ``None`` when DKIM signing is off."""
    domain, selector = conf.DKIM_DOMAIN, conf.DKIM_SELECTOR
    key, key_file = conf.DKIM_PRIVATE_KEY, conf.DKIM_PRIVATE_KEY_FILE
    if not (domain or selector or key or key_file):
        return None
    return _signer(domain, selector, key, key_file)


@lru_cache(maxsize=4)
def _signer(domain: str, selector: str, key: str, key_file: str) -> Signer:
    if not (domain and selector and (key or key_file)):
        raise ImproperlyConfigured(
            "DKIM signing needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY "
            "or DKIM_PRIVATE_KEY_FILE together"
        )
    if key:
        pem = key.replace("\\n", "\n").encode("ascii")
    else:
        try:
            pem = Path(key_file).read_bytes()
        except OSError as error:
            raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_FILE cannot be read: {error}") from None
    return Signer(domain=domain, selector=selector, private_key_pem=pem)


def _header_fields(head: bytes) -> dict[bytes, list[bytes]]:
    """Each header field (folded lines kept, CRLF-ended) by its lower-case name, in order."""
    fields: dict[bytes, list[bytes]] = {}
    for field in _split_fields(head):
        name = field.split(b":", 1)[0].strip().lower()
        fields.setdefault(name, []).append(field)
    return fields


def _split_fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return [field + b"\r\n" for field in fields]


def _relaxed_header(field: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded value, runs of space as one, trimmed."""
    name, _, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of space as one, none at line ends, no empty lines at the end."""
    # Substring tests (C, memchr-fast) spare the regular expressions most bodies.
    if b"  " in body or b"\t" in body:
        body = _WSP_TO_SPACE.sub(b" ", body)
    if b" \r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # (a last line without CRLF keeps its trailing space, as dkimpy's)
    return b"" if body == b"\r\n" else body
