"""Settings come from the environment, with safe defaults and clear refusals."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from signalpost.config import cache_from_url, database_from_url, env_flag, mailer_from_url

ROOT = Path(__file__).resolve().parent.parent


def test_sqlite_is_the_default_with_wal_and_immediate_transactions(tmp_path):
    database = database_from_url("", base_dir=tmp_path)
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] > 0
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]


def test_postgresql_from_database_url(tmp_path):
    database = database_from_url(
        "postgres://app:secret@db.internal:5433/letters", base_dir=tmp_path
    )
    assert database["ENGINE"] == "signalpost.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.internal",
        5433,
        "letters",
    )


def test_an_unsupported_database_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("mysql://root@localhost/x", base_dir=tmp_path)


def test_smtp_email_url():
    mailer = mailer_from_url("smtp://user%40x:p%3Ass@mail.example.com:587?tls=1&timeout=5")
    assert mailer["BACKEND"].endswith("smtp.EmailBackend")
    assert mailer["OPTIONS"] == {
        "host": "mail.example.com",
        "port": 587,
        "username": "user@x",
        "password": "p:ss",
        "use_tls": True,
        "use_ssl": False,
        "timeout": 5.0,
    }


def test_console_email_is_the_default():
    assert mailer_from_url(None)["BACKEND"].endswith("console.EmailBackend")


@pytest.mark.parametrize(
    "url", ["ftp://x", "smtp://h?tls=1&ssl=1", "smtp://h:notaport", "smtp://h?timeout=soon"]
)
def test_a_bad_email_url_is_refused(url):
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        mailer_from_url(url)


def test_cache_urls():
    assert cache_from_url("")["BACKEND"].endswith("LocMemCache")
    redis = cache_from_url("redis://127.0.0.1:6379/1")
    assert redis == {
        "BACKEND": "signalpost.redis_cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/1",
    }
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL"):
        cache_from_url("memcached://x")


def test_the_redis_cache_works_and_builds_one_client_per_pool():
    from signalpost.redis_cache import RedisCache

    cache = RedisCache("redis://127.0.0.1:6379/15", {})
    try:
        cache.clear()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    try:
        assert cache.add("hits", 1, timeout=60)
        assert not cache.add("hits", 5, timeout=60)
        assert cache.incr("hits") == 2
        assert cache.get_many(["hits", "missing"]) == {"hits": 2}
        # Django's own backend builds a redis.Redis per call (~0.2 ms of CPU each).
        assert cache._cache.get_client() is cache._cache.get_client(write=True)
    finally:
        cache.clear()


def test_flags():
    assert env_flag({"DEBUG": "off"}, "DEBUG", default=True) is False
    assert env_flag({}, "DEBUG", default=True) is True
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_flag({"DEBUG": "maybe"}, "DEBUG", default=False)


def run_check(**environ):
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_a_real_secret_key():
    missing = run_check(SIGNALPOST_MODE="production", ALLOWED_HOSTS="news.example.com")
    assert missing.returncode != 0
    assert "SECRET_KEY must be set" in missing.stderr


def test_production_starts_with_a_real_secret_key():
    started = run_check(
        SIGNALPOST_MODE="production",
        ALLOWED_HOSTS="news.example.com",
        SECRET_KEY="k" * 64,
    )
    assert started.returncode == 0, started.stderr


def anymail_tracking_url_served(**environ):
    env = {key: value for key, value in os.environ.items() if key != "ANYMAIL_WEBHOOK_SECRET"}
    env.update(environ)
    shown = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.urls import Resolver404, resolve\n"
            "try:\n    resolve('/anymail/postmark/tracking/'); print('served')\n"
            "except Resolver404:\n    print('absent')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()[-1] == "served"


PRODUCTION = {"SIGNALPOST_MODE": "production", "SECRET_KEY": "k" * 64, "ALLOWED_HOSTS": "x.example"}


def test_bounce_webhooks_are_not_served_in_production_without_their_secret():
    # anymail without a secret accepts anyone's bounce report and ends real subscriptions.
    assert not anymail_tracking_url_served(**PRODUCTION)
    assert anymail_tracking_url_served(**PRODUCTION, ANYMAIL_WEBHOOK_SECRET="esp:long-secret")


def test_a_bounce_webhook_secret_without_a_password_is_refused():
    refused = run_check(**PRODUCTION, ANYMAIL_WEBHOOK_SECRET="nocolon")
    assert refused.returncode != 0
    assert "ANYMAIL_WEBHOOK_SECRET must be user:password" in refused.stderr


def test_a_mistyped_async_commit_flag_stops_the_start_up():
    # A typo must not silently keep (or drop) the subscribe's durability trade-off.
    refused = run_check(**PRODUCTION, SUBSCRIBE_ASYNC_COMMIT="sometimes")
    assert refused.returncode != 0
    assert "SUBSCRIBE_ASYNC_COMMIT must be one of" in refused.stderr
    assert run_check(**PRODUCTION, SUBSCRIBE_ASYNC_COMMIT="off").returncode == 0
