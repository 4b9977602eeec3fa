"""Reading the service's configuration from environment variables.

Each reader turns one variable into the setting Django expects and raises
``ImproperlyConfigured`` naming the variable when its value cannot be used,
so a typo stops the process at start-up rather than at the first email.
"""

import re
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SQLITE_OPTIONS = {
    # IMMEDIATE takes the write lock when a transaction begins, so two writers
    # queue on the busy timeout instead of failing with "database is locked"
    # when one upgrades a read transaction to a write.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": ("PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"),
}

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_flag(environ, name, *, default):
    """Return the boolean value of environment variable ``name``."""
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


def env_list(environ, name, *, default):
    """Return the comma-separated environment variable ``name`` as a list."""
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


def rate_parse(rate):
    """Return ``(count, seconds)`` for a rate such as ``"30/h"`` or ``"5/10m"``, or ``None``."""
    if rate.strip() in {"", "0"}:
        return None
    match = RATE_PATTERN.match(rate)
    if not match:
        raise ImproperlyConfigured(f"rate limit {rate!r} is not COUNT/PERIOD (e.g. 30/h, 5/10m)")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * PERIODS[unit]


def env_rate(environ, name, *, default):
    """Return the rate limit in environment variable ``name`` (see ``rate_parse``), checked."""
    rate = environ.get(name, default)
    try:
        rate_parse(rate)
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"{name}: {error}") from error
    return rate


def database_from_url(url, *, base_dir):
    """Return a ``DATABASES['default']`` dict for ``url`` (SQLite or PostgreSQL)."""
    if not url:
        (base_dir / "var").mkdir(exist_ok=True)
        url = f"sqlite:///{base_dir / 'var' / 'signalpost.sqlite3'}"
    try:
        # Persistent connections: workers and web processes reconnecting per task or
        # request spend more time connecting than working.
        database = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not usable: {error}") from error
    engine = database["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        database["OPTIONS"] = {**SQLITE_OPTIONS, **database.get("OPTIONS", {})}
    elif engine == "django.db.backends.postgresql":
        database["ENGINE"] = "signalpost.postgresql"
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be sqlite:// or postgres://; got engine {engine}"
        )
    return database


def mailer_from_url(url):
    """Return a ``MAILERS['default']`` dict (Django 6.1's email setting) for ``url``.

    ``console:`` prints messages, ``locmem:`` keeps them in memory (tests),
    ``smtp://user:pass@host:port?tls=1`` (or ``ssl=1``, ``timeout=10``) sends them.
    """
    parts = urlsplit(url or "console:")
    scheme = parts.scheme.lower()
    if scheme == "console":
        return {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "locmem":
        return {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme not in {"smtp", "smtps"}:
        raise ImproperlyConfigured(f"EMAIL_URL must be console:, locmem: or smtp://; got {url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        port = parts.port
        timeout = float(query["timeout"]) if "timeout" in query else 30.0
    except ValueError as error:
        raise ImproperlyConfigured(f"EMAIL_URL is not usable: {error}") from error
    use_ssl = scheme == "smtps" or query.get("ssl", "0").lower() in TRUE_WORDS
    use_tls = query.get("tls", "0").lower() in TRUE_WORDS
    if use_ssl and use_tls:
        raise ImproperlyConfigured("EMAIL_URL may ask for tls=1 or ssl=1, not both")
    return {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": parts.hostname or "localhost",
            "port": port,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": use_tls,
            "use_ssl": use_ssl,
            "timeout": timeout,
        },
    }


def cache_from_url(url):
    """Return a ``CACHES['default']`` dict for ``url``.

    ``locmem:`` (the default, one process only), ``redis://host:port/db`` for
    anything that runs more than one process, ``dummy:`` to cache nothing.
    """
    parts = urlsplit(url or "locmem:")
    scheme = parts.scheme.lower()
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if scheme == "dummy":
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    if scheme in {"redis", "rediss"}:
        # Django's backend, reusing its Redis clients (see signalpost.redis_cache).
        return {"BACKEND": "signalpost.redis_cache.RedisCache", "LOCATION": url}
    raise ImproperlyConfigured(f"CACHE_URL must be locmem:, dummy: or redis://...; got {url!r}")


DEVELOPMENT_SECRET_KEY = "signalpost-development-key-never-use-in-production"
SECRET_KEY_MIN_LENGTH = 50


# The production start's numbers, each with the range the start check accepts.
START_NUMBER_RANGES = {
    "WEB_CONCURRENCY": (0, 64),
    "WEB_THREADS": (1, 64),
    "TASK_WORKERS": (0, 64),
    "WEB_MAX_RSS_MB": (64, 1_000_000),
}


def production_problems(environ):
    """Return every reason the environment is unsafe to serve the public, one sentence each.

    Checked by ``signalpost serve`` and ``signalpost worker`` before anything
    starts, so an operator sees every problem at once rather than one per try.
    """
    problems = []
    secret_key = environ.get("SECRET_KEY", "")
    if not secret_key:
        problems.append(
            "SECRET_KEY is not set: set it to a random string of at least 50 characters "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(64))') and keep it."
        )
    elif secret_key == DEVELOPMENT_SECRET_KEY or len(secret_key) < SECRET_KEY_MIN_LENGTH:
        problems.append(
            "SECRET_KEY is the development key or shorter than 50 characters: "
            "generate a random one."
        )
    try:
        if env_flag(environ, "DEBUG", default=False):
            problems.append("DEBUG is on: unset it or set DEBUG=0 (it shows code and settings).")
    except ImproperlyConfigured as error:
        problems.append(str(error))
    if not env_list(environ, "ALLOWED_HOSTS", default=[]):
        problems.append(
            "ALLOWED_HOSTS is empty: set it to the site's host names, e.g. "
            "ALLOWED_HOSTS=news.example.com."
        )
    site_url = environ.get("SITE_URL", "").strip()
    try:
        allow_http = env_flag(environ, "SITE_URL_ALLOW_HTTP", default=False)
    except ImproperlyConfigured as error:
        problems.append(str(error))
        allow_http = True
    if not site_url:
        problems.append(
            "SITE_URL is not set: set it to the address people reach the site at, e.g. "
            "SITE_URL=https://news.example.com (every link in every email starts with it)."
        )
    elif not site_url.lower().startswith("https://") and not allow_http:
        problems.append(
            f"SITE_URL is {site_url!r}, not https://: links in emails would travel "
            "unencrypted. Use https://, or set SITE_URL_ALLOW_HTTP=1 if you mean it."
        )
    for name, (low, high) in START_NUMBER_RANGES.items():
        raw = environ.get(name)
        if raw is not None and not (raw.strip().isdigit() and low <= int(raw) <= high):
            problems.append(f"{name} must be a whole number from {low} to {high}; got {raw!r}.")
    return problems
