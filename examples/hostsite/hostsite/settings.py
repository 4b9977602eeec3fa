"""Settings of the example host site: a site of its own, with Signalpost's lines added.

Every line Signalpost needs is marked ``# Signalpost``; docs/integrate.md explains each.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
ENV = os.environ

SECRET_KEY = ENV.get("SECRET_KEY", "example-host-development-key-never-use-it-in-production")
DEBUG = ENV.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "hostsite.users",
    # Signalpost: its apps, the durable worker before django-tasks-db's.
    "signalpost",
    "signalpost.durable",
    "django_tasks_db",
    "signalpost.accounts",
    "signalpost.newsletters",
    "signalpost.activity",
    "signalpost.publishing",
    "signalpost.engagement",
    "signalpost.webhooks",
    "signalpost.automations",
    "signalpost.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Signalpost: bodies too large or malformed get a 400 or 413 that says why.
    "signalpost.middleware.RequestBodyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hostsite.urls"
AUTH_USER_MODEL = "users.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        ENV.get("DATABASE_URL") or f"sqlite:///{BASE_DIR.parent / 'hostsite.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signalpost: tasks written in the request's transaction, run by manage.py db_worker.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# Where mail goes: an SMTP server (the tests' sink on loopback), else the console.
SMTP_PORT = ENV.get("HOSTSITE_SMTP_PORT")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": int(SMTP_PORT), "timeout": 10},
    }
    if SMTP_PORT
    else {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
}
DEFAULT_FROM_EMAIL = "Riverside Runners <news@riverside.example>"

# Signalpost's own settings: only what this site changes (docs/configuration.md).
SIGNALPOST_SITE_URL = ENV.get("HOSTSITE_URL", "http://127.0.0.1:8000")
SIGNALPOST_BASE_TEMPLATE = "host/base.html"
SIGNALPOST_VERIFIED_EMAIL = "hostsite.users.hooks.verified_email"
SIGNALPOST_BRAND_COLOR = "#0f6b4f"
SIGNALPOST_BRAND_POSTAL_ADDRESS = "Riverside Runners, 12 Quay Street, Riverside"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Signalpost: subscriber lists staff upload, in a folder no URL serves.
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": BASE_DIR.parent / "private"},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hostsite": {"handlers": ["console"], "level": "INFO"}},
}
