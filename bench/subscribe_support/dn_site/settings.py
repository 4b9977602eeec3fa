"""Settings for the django-newsletter side of bench/subscribe.py.

Chosen to match Signalpost's production settings where they affect a subscribe request:
the same middleware, DEBUG off, persistent database connections with health checks
(Signalpost's DATABASE_URL parsing sets ``conn_max_age=600, conn_health_checks=True``),
the same PostgreSQL server and the same SMTP sink.
"""

import os

ENV = os.environ

SECRET_KEY = ENV["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "sorl.thumbnail",  # django-newsletter needs a thumbnailer for its message images
    "newsletter",
]

# Signalpost's middleware, in the same order.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dn_site.urls"
WSGI_APPLICATION = "dn_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": ENV["BENCH_DN_DATABASE"],
        "USER": ENV.get("BENCH_PG_USER", "postgres"),
        "PASSWORD": ENV.get("BENCH_PG_PASSWORD", ""),
        "HOST": ENV.get("BENCH_PG_HOST", "127.0.0.1"),
        "PORT": ENV.get("BENCH_PG_PORT", "5432"),
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SITE_ID = 1

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(ENV["BENCH_SMTP_PORT"])
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = "Bench newsletter <newsletter@localhost>"

NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = False
# The default, stated: subscribing sends an activation email (double opt-in).
NEWSLETTER_CONFIRM_EMAIL = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
