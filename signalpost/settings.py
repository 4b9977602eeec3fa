"""Django settings for Signalpost, read from the environment (docs/configuration.md)."""

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from signalpost.config import (
    DEVELOPMENT_SECRET_KEY,
    cache_from_url,
    database_from_url,
    env_flag,
    env_list,
    env_rate,
    mailer_from_url,
)
from signalpost.security import CSP_PUBLIC

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ

# Production mode refuses to run on the development key or without one.
PRODUCTION = ENV.get("SIGNALPOST_MODE", "development").strip().lower() == "production"
SECRET_KEY = ENV.get("SECRET_KEY", "" if PRODUCTION else DEVELOPMENT_SECRET_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY == DEVELOPMENT_SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random string of at least 50 characters in production "
        "(python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )

DEBUG = env_flag(ENV, "DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list(
    ENV,
    "ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"],
)
SIGNALPOST_SITE_URL = ENV.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # First, so its templates (admin/base_site.html) override the admin's own.
    "signalpost",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before django_tasks_db: its db_worker command is replaced by ours (with heartbeats).
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
    "anymail",
    # Its templates and static files serve the API docs' Swagger UI from this site.
    "ninja",
]

MIDDLEWARE = [
    # First: one log line per request, with its duration and outcome.
    "signalpost.logs.RequestLogMiddleware",
    "signalpost.middleware.HeadWithoutBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body (CsrfViewMiddleware reads forms): size, charset, files.
    "signalpost.middleware.RequestBodyMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "signalpost.security.StaffContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language of each page: the switcher's cookie, else Accept-Language (docs/languages.md).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if PRODUCTION:
    # The static files collectstatic gathered, straight after the security headers:
    # no session, CSRF or auth work for them. (Development's runserver serves them.)
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.csp.ContentSecurityPolicyMiddleware"),
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

ROOT_URLCONF = "signalpost.urls"
WSGI_APPLICATION = "signalpost.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Per-newsletter email templates of a deployment: templates/emails/<slug>/<name>.
        # Then this project's own error pages (400, 404, 500): not the apps', so that a
        # site installing the apps keeps its own.
        "DIRS": [BASE_DIR / "templates", Path(__file__).resolve().parent / "project_templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "signalpost.context_processors.site_links",
                # {{ csp_nonce }}: the admin's own inline script carries it.
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(ENV.get("DATABASE_URL"), base_dir=BASE_DIR)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so the worker processes that tests start share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-signalpost.sqlite3")}
# Behind PgBouncer in transaction pooling mode (docs/deploy.md), one session may
# serve another client's next transaction: nothing may outlive a transaction on it.
# So no prepared statements (psycopg prepares a query run 5 times; PgBouncer before
# 1.21 loses them), no server-side cursors, no session settings
# (signalpost.durability, publishing.writes.SentMarks ask this setting).
SIGNALPOST_DATABASE_TRANSACTION_POOLING = env_flag(
    ENV, "DATABASE_TRANSACTION_POOLING", default=False
)
if SIGNALPOST_DATABASE_TRANSACTION_POOLING and DATABASES["default"]["ENGINE"].endswith(
    "postgresql"
):
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "prepare_threshold": None,
    }
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": cache_from_url(ENV.get("CACHE_URL"))}

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}
# A running task whose worker has sent no heartbeat for this long is run again
# by another worker. Workers beat every quarter of it.
SIGNALPOST_WORKER_LEASE_SECONDS = float(ENV.get("WORKER_LEASE_SECONDS", "30"))
SIGNALPOST_WORKER_BATCH_SIZE = int(ENV.get("WORKER_BATCH_SIZE", "100"))
# Modules of durable receivers outside the apps' receivers.py (tests, benchmarks).
SIGNALPOST_DURABLE_RECEIVER_MODULES = [
    module for module in ENV.get("DURABLE_RECEIVER_MODULES", "").split(",") if module.strip()
]

# Subscribing: one confirmation email per address per window; links' lifetimes.
SIGNALPOST_CONFIRMATION_WINDOW_SECONDS = int(ENV.get("CONFIRMATION_WINDOW_SECONDS", "3600"))
SIGNALPOST_CONFIRMATION_MAX_AGE_SECONDS = int(ENV.get("CONFIRMATION_MAX_AGE_SECONDS", "604800"))
SIGNALPOST_PREFERENCES_MAX_AGE_SECONDS = int(ENV.get("PREFERENCES_MAX_AGE_SECONDS", "7776000"))
# A pending subscription's commit does not wait for the disk (PostgreSQL): see
# signalpost/durability.py. Confirmations and unsubscribes always wait.
SIGNALPOST_SUBSCRIBE_ASYNC_COMMIT = env_flag(ENV, "SUBSCRIBE_ASYNC_COMMIT", default=True)
# Rate limits, "COUNT/PERIOD" with PERIOD s, m, h or d; "0" turns one off.
SIGNALPOST_RATE_LIMITS = {
    "subscribe_ip": env_rate(ENV, "SUBSCRIBE_RATE_PER_IP", default="30/h"),
    "subscribe_address": env_rate(ENV, "SUBSCRIBE_RATE_PER_ADDRESS", default="5/h"),
    "preferences_address": env_rate(ENV, "PREFERENCES_LINK_RATE_PER_ADDRESS", default="3/h"),
    "unsubscribe_ip": env_rate(ENV, "UNSUBSCRIBE_RATE_PER_IP", default="30/h"),
}
# Sending issues: messages per batch task (one SMTP connection each), the rate
# across every worker sharing the cache (0: no limit), attempts per recipient.
SIGNALPOST_SEND_BATCH_SIZE = int(ENV.get("SEND_BATCH_SIZE", "500"))
# Deliveries a send's preparing task creates at a time, after the click (~0.15 s each).
SIGNALPOST_SEND_PREPARE_CHUNK_SIZE = int(ENV.get("SEND_PREPARE_CHUNK_SIZE", "10000"))
SIGNALPOST_SEND_RATE_PER_SECOND = int(ENV.get("SEND_RATE_PER_SECOND", "0"))
SIGNALPOST_SEND_MAX_ATTEMPTS = int(ENV.get("SEND_MAX_ATTEMPTS", "5"))
# Seconds an issue's Markdown may take to render before it is refused
# (signalpost/publishing/markdown_sandbox.py), so that saving one answers within 2 s.
SIGNALPOST_MARKDOWN_RENDER_TIMEOUT = float(ENV.get("MARKDOWN_RENDER_TIMEOUT", "1.5"))
# Bounces and complaints arrive through django-anymail's tracking webhooks
# (/anymail/<esp>/tracking/), protected by basic auth "user:password". Without a
# secret anymail would take anyone's word for a bounce, so then the URLs are not served.
ANYMAIL_WEBHOOK_SECRET = ENV.get("ANYMAIL_WEBHOOK_SECRET", "" if PRODUCTION else "anymail:dev")
if ANYMAIL_WEBHOOK_SECRET and ":" not in ANYMAIL_WEBHOOK_SECRET:
    raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SECRET must be user:password")
ANYMAIL = {"WEBHOOK_SECRET": ANYMAIL_WEBHOOK_SECRET}
# Soft bounces end an address's subscriptions at LIMIT of them within WINDOW_DAYS, unless
# mail got through in between: a delivery sent after the last soft bounce that has gone
# DELIVERY_SETTLED_DAYS without bouncing (or a provider's "delivered" event) resets them.
SIGNALPOST_SOFT_BOUNCE_LIMIT = int(ENV.get("SOFT_BOUNCE_LIMIT", "3"))
SIGNALPOST_SOFT_BOUNCE_WINDOW_DAYS = int(ENV.get("SOFT_BOUNCE_WINDOW_DAYS", "30"))
SIGNALPOST_DELIVERY_SETTLED_DAYS = int(ENV.get("DELIVERY_SETTLED_DAYS", "3"))
# Webhook targets on loopback, private or link-local addresses are refused unless allowed.
SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_flag(
    ENV, "WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False
)
SIGNALPOST_WEBHOOK_MAX_ATTEMPTS = int(ENV.get("WEBHOOK_MAX_ATTEMPTS", "8"))
# How many reverse proxies in front of the site append to X-Forwarded-For (0: trust none).
SIGNALPOST_TRUSTED_PROXY_COUNT = int(ENV.get("TRUSTED_PROXY_COUNT", "0"))

MAILERS = {"default": mailer_from_url(ENV.get("EMAIL_URL"))}
DEFAULT_FROM_EMAIL = ENV.get("DEFAULT_FROM_EMAIL", "Signalpost <newsletters@localhost>")
# Where bounces go: each message's envelope sender is BOUNCE_ADDRESS with a signed token
# naming its recipient (VERP, signalpost/mail/verp.py); empty: the From address.
# process_bounces reads BOUNCE_MAILBOX_URL unless given --mailbox.
SIGNALPOST_BOUNCE_ADDRESS = ENV.get("BOUNCE_ADDRESS", "")
if SIGNALPOST_BOUNCE_ADDRESS and not re.fullmatch(
    r"[A-Za-z0-9._-]{1,40}@[A-Za-z0-9.-]+", SIGNALPOST_BOUNCE_ADDRESS
):
    raise ImproperlyConfigured(
        "BOUNCE_ADDRESS must be a plain address such as bounces@news.example.org "
        "(letters, digits, . _ - before the @; the token goes after a +)"
    )
SIGNALPOST_BOUNCE_MAILBOX_URL = ENV.get("BOUNCE_MAILBOX_URL", "")
# imaps:// and pop3s:// trust only this CA file (PEM: a private CA, or the server's
# self-signed certificate) when set; otherwise the system's CAs.
SIGNALPOST_BOUNCE_MAILBOX_CA_FILE = ENV.get("BOUNCE_MAILBOX_CA_FILE", "")
# With BOUNCE_MAILBOX_URL the workers read it every BOUNCE_POLL_SECONDS, at most
# BOUNCE_POLL_LIMIT messages a time (the rest on the next poll).
SIGNALPOST_BOUNCE_POLL_SECONDS = float(ENV.get("BOUNCE_POLL_SECONDS", "300"))
SIGNALPOST_BOUNCE_POLL_LIMIT = int(ENV.get("BOUNCE_POLL_LIMIT", "5000"))
# DKIM signing of every message sent over SMTP (signalpost/mail/dkim.py): all three or none.
# DKIM_PRIVATE_KEY is the PEM text ("\n" may stand for line ends); or a file holds it.
SIGNALPOST_DKIM_DOMAIN = ENV.get("DKIM_DOMAIN", "")
SIGNALPOST_DKIM_SELECTOR = ENV.get("DKIM_SELECTOR", "")
SIGNALPOST_DKIM_PRIVATE_KEY = ENV.get("DKIM_PRIVATE_KEY", "")
SIGNALPOST_DKIM_PRIVATE_KEY_FILE = ENV.get("DKIM_PRIVATE_KEY_FILE", "")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The languages of the site and its emails (docs/languages.md): a page follows its
# reader's choice (the switcher, else Accept-Language), a newsletter's emails its own
# language; SITE_LANGUAGE is the default of both.
# Each named in itself: the switcher lists them so.
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español"), ("fr", "Français")]
LANGUAGE_CODE = ENV.get("SITE_LANGUAGE", "en").strip() or "en"
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"SITE_LANGUAGE must be one of {', '.join(dict(LANGUAGES))}; got {LANGUAGE_CODE!r}"
    )
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(ENV.get("STATIC_ROOT") or BASE_DIR / "var" / "static")
# Images uploaded into issues (publishing.services.issue_image_add), served by the
# site itself at /media/issues/ (docs/publishing.md). Back this folder up.
MEDIA_ROOT = Path(ENV.get("MEDIA_ROOT") or BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"
# Production serves the files collectstatic gathered (WhiteNoise): compressed, with
# content-hashed names cached for a year. Development and tests read them in place.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Files staff upload that hold personal data (subscriber CSVs and their reports):
    # outside every served directory, read only through permission-checked admin views.
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ENV.get("PRIVATE_FILES_ROOT") or BASE_DIR / "var" / "private"},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Request bodies (docs/configuration.md). The public pages take a handful of short
# fields, the API JSON (an issue's 100,000 characters of Markdown are at most ~600 kB);
# the views named here (URL name, or namespace) take more: the admin's forms, CSV
# imports, the email providers' batched event reports. A bigger body gets 413 before
# it is read.
MIB = 1024 * 1024
SIGNALPOST_REQUEST_BODY_MAX_BYTES = 64 * 1024
SIGNALPOST_REQUEST_BODY_MAX_BYTES_BY_VIEW = {
    "api": 1 * MIB,
    "api:subscribers_import_csv": 5 * MIB,
    "admin": 6 * MIB,
    "anymail": 6 * MIB,
}
# Django's own ceiling on what it reads into memory: the largest limit above.
DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * MIB
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
# No view takes files: each file part is refused as its headers arrive, before a
# byte of it is stored (signalpost/uploads.py). A view marked @takes_files gets
# Django's handlers: in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then a temporary file.
FILE_UPLOAD_HANDLERS = [
    "signalpost.uploads.FilesRefusedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = int(2.5 * MIB)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto (only then:
# a client could otherwise claim HTTPS), request.is_secure() follows the header.
if env_flag(ENV, "BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browsers remember to use HTTPS only (sent on HTTPS responses only).
SECURE_HSTS_SECONDS = int(ENV.get("HSTS_SECONDS", "31536000" if PRODUCTION else "0"))
# The public pages load nothing from anywhere else and run no inline code; the admin
# gets its own policy (signalpost.security).
SECURE_CSP = CSP_PUBLIC

# Maintenance the workers run on their heartbeat (signalpost.durable.maintenance):
# finished task rows and delivered or given-up webhook messages older than these
# many days are deleted, once per interval across the workers. 0 keeps them.
SIGNALPOST_MAINTENANCE_INTERVAL_SECONDS = int(ENV.get("MAINTENANCE_INTERVAL_SECONDS", "3600"))
SIGNALPOST_TASK_RESULTS_RETENTION_DAYS = int(ENV.get("TASK_RESULTS_RETENTION_DAYS", "14"))
SIGNALPOST_WEBHOOK_MESSAGES_RETENTION_DAYS = int(ENV.get("WEBHOOK_MESSAGES_RETENTION_DAYS", "30"))

# Engagement (docs/engagement.md): a click this soon after its email was sent, or
# this close to a click on another link of the same email, is a scanner's. A click or
# open waits SETTLE seconds before it is judged (the rest of a burst must be in), and
# each worker heartbeat records for at most BEAT_BUDGET seconds.
SIGNALPOST_ENGAGEMENT_EARLY_SECONDS = float(ENV.get("ENGAGEMENT_EARLY_SECONDS", "10"))
SIGNALPOST_ENGAGEMENT_BURST_SECONDS = float(ENV.get("ENGAGEMENT_BURST_SECONDS", "2"))
SIGNALPOST_ENGAGEMENT_SETTLE_SECONDS = float(ENV.get("ENGAGEMENT_SETTLE_SECONDS", "5"))
SIGNALPOST_ENGAGEMENT_BEAT_BUDGET_SECONDS = float(ENV.get("ENGAGEMENT_BEAT_BUDGET_SECONDS", "3"))
# Webhooks issue.clicked / issue.opened carry machine (scanner, proxy) events too.
SIGNALPOST_WEBHOOKS_MACHINE_ENGAGEMENT = env_flag(ENV, "WEBHOOKS_MACHINE_ENGAGEMENT", default=False)

LOG_FORMAT = ENV.get("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json; got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "signalpost.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "loggers": {
        "signalpost": {"handlers": ["console"], "level": ENV.get("LOG_LEVEL", "INFO")},
        # Errors Django logs (a 500's traceback) go to the same place, in the same format.
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Its 4xx lines name the path (tokens included): the request log has them without.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # The worker's own lines (start, stop); each task's line is signalpost.tasks'.
        "django_tasks_db": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
