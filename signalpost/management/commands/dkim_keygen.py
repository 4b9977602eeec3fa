"""``manage.py dkim_keygen --key-file PATH``: a DKIM key, and the DNS record that publishes it."""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management.base import BaseCommand, CommandError

from signalpost.conf import conf
from signalpost.mail.dkim import dns_record

LABEL_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789-.")


class Command(BaseCommand):
    help = (
        "Write a new 2048-bit RSA DKIM key to --key-file (mode 0600; an existing file is "
        "read, never overwritten) and print the TXT record to publish in DNS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--key-file", required=True, help="where the private key goes")
        parser.add_argument("--domain", default=conf.DKIM_DOMAIN, help="the d= domain")
        parser.add_argument("--selector", default=conf.DKIM_SELECTOR or "signalpost")
        parser.add_argument("--bits", type=int, default=2048, choices=[2048, 3072, 4096])

    def handle(self, *args, key_file, domain, selector, bits, **options):
        for label, value in (("--domain", domain), ("--selector", selector)):
            if not value or len(value) > 253 or not set(value.lower()) <= LABEL_CHARACTERS:
                raise CommandError(f"{label} must be a DNS name (letters, digits, - and .)")
        path = Path(key_file)
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as error:
                raise CommandError(
                    f"{path} exists and is not a readable PEM key: {error}"
                ) from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise CommandError(f"{path} holds a key that is not RSA")
            self.stderr.write(f"{path} exists: printing the record for its key.")
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as error:
                raise CommandError(f"cannot create {path}: {error}") from None
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
            self.stderr.write(f"Wrote a {bits}-bit key to {path}.")
        name, value = dns_record(key, domain=domain.lower(), selector=selector.lower())
        # A TXT string holds at most 255 characters: longer values go as several strings.
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        self.stdout.write(f"{name}. IN TXT ( {strings} )")
        self.stderr.write(
            f"Then set DKIM_DOMAIN={domain.lower()} DKIM_SELECTOR={selector.lower()} "
            f"DKIM_PRIVATE_KEY_FILE={path.resolve()}"
        )
