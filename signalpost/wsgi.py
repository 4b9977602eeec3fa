"""WSGI entry point: ``signalpost serve`` runs it with granian (``signalpost.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

from signalpost.handlers import SignalpostWSGIRequest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
application = get_wsgi_application()
application.request_class = SignalpostWSGIRequest

# Everything loaded so far (Django, the apps, their modules) lives as long as
# the process. Left to the cyclic collector, those ~100,000 objects are walked
# by every full collection: a pause of tens of milliseconds that lands on
# whichever requests are waiting. Frozen, they are never walked again.
gc.freeze()
