"""Refusing webhook targets inside our own network (SSRF)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class TargetRefused(ValueError):
    """The URL points where webhooks may not go."""


def target_check(url):
    """Raise ``TargetRefused`` unless ``url`` is http(s) to public addresses only.

    Every address the host resolves to must be global: loopback, private,
    link-local, multicast and reserved ranges are refused unless the setting
    ``SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS`` allows them.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise TargetRefused("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed")
    if settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port)}
    except (OSError, ValueError) as error:
        raise TargetRefused(f"the host cannot be resolved: {error}") from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise TargetRefused(f"{parts.hostname} resolves to {ip}, which is not public")
