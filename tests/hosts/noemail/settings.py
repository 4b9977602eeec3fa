"""Signalpost in a host whose AUTH_USER_MODEL has no email field (tests/test_host_users.py)."""

import os

from signalpost.settings import *  # noqa: F403

INSTALLED_APPS = ["tests.hosts.noemail", *INSTALLED_APPS]  # noqa: F405
AUTH_USER_MODEL = "noemail.Member"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["NOEMAIL_DATABASE"],
    }
}
