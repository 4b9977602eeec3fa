"""Signalpost's own settings: each a ``SIGNALPOST_`` name in Django's settings, with a default.

Every app reads them here (``from signalpost.conf import conf``; ``conf.SITE_URL``), so a
host project sets only what it wants to change (docs/integrate.md), and the standalone
service's settings (``signalpost/settings.py``) map its environment variables to the same
names (docs/configuration.md). A value is read from Django's settings on each access, so
``override_settings`` in tests and ``settings.SIGNALPOST_...`` in a host both take effect.
"""

from typing import Any

from django.conf import settings

PREFIX = "SIGNALPOST_"
MIB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    # The base of every link in an email: the site as subscribers reach it.
    "SITE_URL": "http://127.0.0.1:8000",
    # Public pages: the template they extend, and the hook naming a user's verified address.
    "BASE_TEMPLATE": "signalpost/base.html",
    "VERIFIED_EMAIL": None,
    # Emails' branding when a newsletter sets none of its own.
    "BRAND_LOGO_URL": "",
    "BRAND_COLOR": "",
    "BRAND_POSTAL_ADDRESS": "",
    # The task worker and its maintenance.
    "WORKER_LEASE_SECONDS": 30.0,
    "WORKER_BATCH_SIZE": 100,
    "DURABLE_RECEIVER_MODULES": [],
    "MAINTENANCE_INTERVAL_SECONDS": 3600,
    "TASK_RESULTS_RETENTION_DAYS": 14,
    "WEBHOOK_MESSAGES_RETENTION_DAYS": 30,
    # Databases behind PgBouncer in transaction pooling mode (docs/deploy.md).
    "DATABASE_TRANSACTION_POOLING": False,
    # Subscribing.
    "CONFIRMATION_WINDOW_SECONDS": 3600,
    "CONFIRMATION_MAX_AGE_SECONDS": 604800,
    "PREFERENCES_MAX_AGE_SECONDS": 7776000,
    "SUBSCRIBE_ASYNC_COMMIT": True,
    "RATE_LIMITS": {
        "subscribe_ip": "30/h",
        "subscribe_address": "5/h",
        "preferences_address": "3/h",
        "unsubscribe_ip": "30/h",
    },
    "TRUSTED_PROXY_COUNT": 0,
    # Sending issues.
    "SEND_BATCH_SIZE": 500,
    "SEND_PREPARE_CHUNK_SIZE": 10000,
    "SEND_RATE_PER_SECOND": 0,
    "SEND_MAX_ATTEMPTS": 5,
    "MARKDOWN_RENDER_TIMEOUT": 1.5,
    # Bounces and DKIM.
    "SOFT_BOUNCE_LIMIT": 3,
    "SOFT_BOUNCE_WINDOW_DAYS": 30,
    "DELIVERY_SETTLED_DAYS": 3,
    "BOUNCE_ADDRESS": "",
    "BOUNCE_MAILBOX_URL": "",
    "BOUNCE_MAILBOX_CA_FILE": "",
    "BOUNCE_POLL_SECONDS": 300.0,
    "BOUNCE_POLL_LIMIT": 5000,
    "DKIM_DOMAIN": "",
    "DKIM_SELECTOR": "",
    "DKIM_PRIVATE_KEY": "",
    "DKIM_PRIVATE_KEY_FILE": "",
    # Webhooks.
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": False,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOKS_MACHINE_ENGAGEMENT": False,
    # Engagement (docs/engagement.md): how clicks are judged human or machine.
    "ENGAGEMENT_EARLY_SECONDS": 10.0,
    "ENGAGEMENT_BURST_SECONDS": 2.0,
    "ENGAGEMENT_SETTLE_SECONDS": 5.0,
    "ENGAGEMENT_BEAT_BUDGET_SECONDS": 3.0,
    # Request bodies (signalpost.middleware.RequestBodyMiddleware).
    "REQUEST_BODY_MAX_BYTES": 64 * 1024,
    "REQUEST_BODY_MAX_BYTES_BY_VIEW": {
        "api": 1 * MIB,
        "api:subscribers_import_csv": 5 * MIB,
        "admin": 6 * MIB,
        "anymail": 6 * MIB,
    },
}


class SignalpostSettings:
    """Signalpost's settings by their names without the prefix (``conf.SITE_URL``).

    A dictionary setting a project sets is merged over the default, so a host that sets
    one rate limit keeps the others.
    """

    SITE_URL: str
    BASE_TEMPLATE: str
    VERIFIED_EMAIL: str | None
    BRAND_LOGO_URL: str
    BRAND_COLOR: str
    BRAND_POSTAL_ADDRESS: str
    WORKER_LEASE_SECONDS: float
    WORKER_BATCH_SIZE: int
    DURABLE_RECEIVER_MODULES: list[str]
    MAINTENANCE_INTERVAL_SECONDS: int
    TASK_RESULTS_RETENTION_DAYS: int
    WEBHOOK_MESSAGES_RETENTION_DAYS: int
    DATABASE_TRANSACTION_POOLING: bool
    CONFIRMATION_WINDOW_SECONDS: int
    CONFIRMATION_MAX_AGE_SECONDS: int
    PREFERENCES_MAX_AGE_SECONDS: int
    SUBSCRIBE_ASYNC_COMMIT: bool
    RATE_LIMITS: dict[str, str]
    TRUSTED_PROXY_COUNT: int
    SEND_BATCH_SIZE: int
    SEND_PREPARE_CHUNK_SIZE: int
    SEND_RATE_PER_SECOND: int
    SEND_MAX_ATTEMPTS: int
    MARKDOWN_RENDER_TIMEOUT: float
    SOFT_BOUNCE_LIMIT: int
    SOFT_BOUNCE_WINDOW_DAYS: int
    DELIVERY_SETTLED_DAYS: int
    BOUNCE_ADDRESS: str
    BOUNCE_MAILBOX_URL: str
    BOUNCE_MAILBOX_CA_FILE: str
    BOUNCE_POLL_SECONDS: float
    BOUNCE_POLL_LIMIT: int
    DKIM_DOMAIN: str
    DKIM_SELECTOR: str
    DKIM_PRIVATE_KEY: str
    DKIM_PRIVATE_KEY_FILE: str
    WEBHOOKS_ALLOW_PRIVATE_TARGETS: bool
    WEBHOOK_MAX_ATTEMPTS: int
    WEBHOOKS_MACHINE_ENGAGEMENT: bool
    ENGAGEMENT_EARLY_SECONDS: float
    ENGAGEMENT_BURST_SECONDS: float
    ENGAGEMENT_SETTLE_SECONDS: float
    ENGAGEMENT_BEAT_BUDGET_SECONDS: float
    REQUEST_BODY_MAX_BYTES: int
    REQUEST_BODY_MAX_BYTES_BY_VIEW: dict[str, int]

    def __getattr__(self, name: str) -> Any:
        """Return ``settings.SIGNALPOST_<name>``, or its default when the project sets none."""
        try:
            default = DEFAULTS[name]
        except KeyError:
            raise AttributeError(f"Signalpost has no setting {PREFIX}{name}") from None
        value = getattr(settings, PREFIX + name, default)
        if isinstance(default, dict) and value is not default:
            return {**default, **value}
        return value


conf = SignalpostSettings()
