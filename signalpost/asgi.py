"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

from signalpost.handlers import SignalpostASGIRequest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
application = get_asgi_application()
application.request_class = SignalpostASGIRequest
