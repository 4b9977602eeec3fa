"""Settings for the django-newsletter side of bench/fanout.py (run from its own venv).

Like bench/subscribe_support/dn_site (same apps, same SMTP backend at the sink, DEBUG
off, persistent connections), plus the three throttling settings of
``Submission.submit`` left unset on purpose: django-newsletter sleeps only when
``NEWSLETTER_EMAIL_DELAY`` / ``NEWSLETTER_BATCH_SIZE`` exist (``hasattr``), so unset
means no sleep at all (setting them to 0 would still call ``time.sleep(0)``).
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

ROOT_URLCONF = "dn_fanout.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
MEDIA_URL = "media/"
