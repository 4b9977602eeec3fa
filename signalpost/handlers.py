"""Django's request classes, keeping an unreadable Content-Type header for a 400.

Django parses the Content-Type header while it builds the request, before any
middleware runs: a header it cannot parse (an unknown RFC 2231 charset, more than
10,000 characters) raises ``BadRequest`` outside every handler, and the WSGI server
answers 500. These classes record the fault instead, and
:class:`signalpost.middleware.RequestBodyMiddleware` answers it with a 400.
``signalpost/wsgi.py`` and ``signalpost/asgi.py`` install them.
"""

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


class SignalpostWSGIRequest(_ContentTypeFaultKept, WSGIRequest):
    pass


class SignalpostASGIRequest(_ContentTypeFaultKept, ASGIRequest):
    pass
