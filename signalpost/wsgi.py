"""WSGI entry point: ``gunicorn signalpost.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
application = get_wsgi_application()
