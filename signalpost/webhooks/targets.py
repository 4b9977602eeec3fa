"""Refusing webhook targets inside our own network (SSRF)."""

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from signalpost.conf import conf

# Ranges that do not lead to the public internet although Python 3.12.1 calls
# them global: IETF protocol assignments such as 192.0.0.8, the local-use
# NAT64 prefix, the IPv6 documentation range. And Teredo, which it already
# refuses, since the IPv4 address a Teredo address leads to cannot be checked.
NOT_PUBLIC = [
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2001::/32"),
    ipaddress.ip_network("3fff::/20"),
]
# Outside it, IPv6 is unallocated, reserved or local (site-local fec0::/10,
# which Python 3.12.1 also calls global); inside, ``is_global`` sorts the rest.
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class TargetRefused(ValueError):
    """The URL points where webhooks may not go."""


def ipv4_embedded(ip):
    """Return the IPv4 address a packet to IPv6 ``ip`` ends up at, or None if there is none.

    That is the address inside an IPv4-mapped or -compatible address, one
    under the NAT64 prefix, or a 6to4 one.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or ip in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def address_is_public(ip):
    """Return whether a connection to ``ip`` (an ``ipaddress`` address) reaches the public
    internet, and not a network of ours."""
    if any(ip in network for network in NOT_PUBLIC):
        return False
    if ip.version == 6:
        embedded = ipv4_embedded(ip)
        if embedded is not None:
            return address_is_public(embedded)
        if ip not in IPV6_GLOBAL_UNICAST:
            return False
    return ip.is_global and not ip.is_multicast


def target_check(url: str) -> list[tuple[socket.AddressFamily, Any]] | None:
    """Return the addresses webhooks for ``url`` must connect to; raise ``TargetRefused``
    unless ``url`` is http(s) to public addresses only.

    The host is resolved once, here, and every address it resolves to must be
    public. The answer is a list of ``(family, sockaddr)`` pairs: connect to
    those rather than resolve the host again, which could answer differently
    (DNS rebinding). With ``SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS`` any
    host is allowed, nothing is resolved, and the answer is None.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise TargetRefused("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed")
    if conf.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as error:
        raise TargetRefused(f"the host cannot be resolved: {error}") from error
    # sockaddr is (host, port, ...) for the INET families a TCP lookup returns.
    addresses: list[tuple[socket.AddressFamily, Any]] = list(
        dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos)
    )
    if not addresses:
        raise TargetRefused("the host cannot be resolved")
    for _, sockaddr in addresses:
        # Naming the address would let API clients map our internal DNS.
        if not address_is_public(ipaddress.ip_address(sockaddr[0].split("%")[0])):
            raise TargetRefused(f"{parts.hostname} resolves to an address that is not public")
    return addresses
