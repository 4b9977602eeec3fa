"""WSGI entry point: ``gunicorn dn_site.wsgi`` with bench/subscribe_support on the path."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dn_site.settings")
application = get_wsgi_application()
