"""Opening webhook URLs: no redirects, and only the addresses ``target_check`` vetted."""

import http.client
import socket
import ssl
import sys
import urllib.request
from typing import Any


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead past the target check: treat it as the answer."""

    def redirect_request(self, *args, **kwargs):
        return None


def socket_connect(*, addresses, timeout):
    """Return a TCP socket connected to the first of ``addresses`` that accepts.

    ``addresses`` are ``(family, sockaddr)`` pairs as ``target_check`` returns
    them; nothing is resolved here.
    """
    error = OSError("the host has no address to connect to")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # http.client's default timeout is a marker for "the global default".
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as refused:
            sock.close()
            error = refused
        else:
            return sock
    raise error


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection for ``host`` that goes to the vetted ``addresses`` instead of
    resolving ``host`` again; the Host header still names ``host``."""

    def __init__(self, host, *, addresses, **kwargs):
        super().__init__(host, **kwargs)
        self.addresses = addresses

    def connect(self):
        sys.audit("http.client.connect", self, self.host, self.port)
        self.sock = socket_connect(addresses=self.addresses, timeout=self.timeout)
        # As http.client does: a small request is not held back waiting for ACKs.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """The same over TLS: SNI and the certificate check use ``host``, not the address."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host, *, addresses, context=None, **kwargs):
        super().__init__(host, addresses=addresses, **kwargs)
        self.context = context or ssl.create_default_context()

    def connect(self):
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


class PinnedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http and https URLs on the vetted ``addresses`` (in place of both default
    handlers, being a subclass of each)."""

    def __init__(self, addresses):
        super().__init__()
        self.addresses = addresses

    def http_open(self, request):
        return self.do_open(PinnedHTTPConnection, request, addresses=self.addresses)

    def https_open(self, request):
        return self.do_open(PinnedHTTPSConnection, request, addresses=self.addresses)


opener_resolving = urllib.request.build_opener(NoRedirects)


def opener_for(
    *, addresses: list[tuple[socket.AddressFamily, Any]] | None
) -> urllib.request.OpenerDirector:
    """Return an opener that follows no redirect and connects only to ``addresses``.

    With ``addresses`` None (private targets allowed, nothing vetted) the
    opener resolves the host itself, as urllib does.
    """
    if addresses is None:
        return opener_resolving
    # No proxy from the environment either: the proxy would resolve the host
    # again, past the check.
    return urllib.request.build_opener(
        NoRedirects, urllib.request.ProxyHandler({}), PinnedHandler(addresses)
    )
