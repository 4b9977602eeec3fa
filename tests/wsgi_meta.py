"""A WSGI application for tests: the keys a server's environ holds and those of request.META.

``tests/test_production_start.py`` serves it with granian, as ``signalpost serve`` runs
Signalpost, to see what the server puts in a request and what Signalpost's request keeps.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
django.setup()

from signalpost.handlers import SignalpostWSGIRequest  # noqa: E402 (after setup)


def application(environ, start_response):
    server = sorted(environ)
    meta = sorted(SignalpostWSGIRequest(environ).META)
    body = json.dumps({"server": server, "meta": meta}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
