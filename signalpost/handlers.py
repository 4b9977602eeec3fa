"""Django's request classes, keeping an unreadable Content-Type header for a 400.

Django parses the Content-Type header while it builds the request, before any
middleware runs: a header it cannot parse (an unknown RFC 2231 charset, more than
10,000 characters) raises ``BadRequest`` outside every handler, and the WSGI server
answers 500. These classes record the fault instead, and
:class:`signalpost.middleware.RequestBodyMiddleware` answers it with a 400.
``signalpost/wsgi.py`` and ``signalpost/asgi.py`` install them.

The WSGI class also keeps the process's environment variables out of ``request.META``:
granian (the production server) and ``runserver`` build each request's environ on a copy
of ``os.environ``, so without this ``SECRET_KEY``, ``DATABASE_URL`` and ``EMAIL_URL``
would sit in every request, where an error report or a debugging aid could print them.
"""

import functools
import os
from typing import Any

from django.core.exceptions import BadRequest
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest


class _ContentTypeFaultKept:
    content_type_fault = None

    def _set_content_type_params(self, meta):
        try:
            super()._set_content_type_params(meta)
        except BadRequest as exc:
            self.content_type, self.content_params = "", {}
            self.content_type_fault = str(exc)


# What a request's environ holds by PEP 3333 and RFC 3875 whatever the process's variables.
_REQUEST_KEYS = frozenset(
    {
        "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "PATH_INFO",
        "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT",
        "REMOTE_PORT", "REMOTE_USER", "REQUEST_METHOD", "REQUEST_URI", "SCRIPT_NAME",
        "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
    }
)  # fmt: skip


@functools.cache
def _process_keys() -> tuple[str, ...]:
    """The process's environment variables that no request sets (read at the first request)."""
    return tuple(
        key for key in os.environ if key not in _REQUEST_KEYS and not key.startswith("HTTP_")
    )


class SignalpostWSGIRequest(_ContentTypeFaultKept, WSGIRequest):
    def __init__(self, environ: dict[str, Any]) -> None:
        for key in _process_keys():
            environ.pop(key, None)
        super().__init__(environ)


class SignalpostASGIRequest(_ContentTypeFaultKept, ASGIRequest):
    pass
