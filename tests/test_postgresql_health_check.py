"""The PostgreSQL backend's health check (``signalpost.postgresql``): no round
trip when nothing is wrong, a new connection when the server dropped the old one."""

import time

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL"),
    # These watch the client's own server backend (its pid, pg_terminate_backend); behind a
    # transaction pooler the client has none of its own between transactions.
    pytest.mark.skipif(
        django_settings.SIGNALPOST_DATABASE_TRANSACTION_POOLING,
        reason="a direct connection's backend; behind PgBouncer there is none per client",
    ),
]


def other_connection():
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    )


def last_statement(pid):
    """The statement backend ``pid`` last ran, and when it started, as the server saw it."""
    with other_connection() as observer:
        return observer.execute(
            "SELECT query, query_start FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()


def health_check_run():
    """What Django does before a request's first query."""
    connection.health_check_done = False
    connection.close_if_health_check_failed()


def test_a_healthy_idle_connection_is_checked_without_a_query():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'before the check'")
    pid = connection.connection.info.backend_pid
    before = last_statement(pid)

    health_check_run()

    assert connection.connection is not None
    assert connection.connection.info.backend_pid == pid
    # The server saw nothing: its last statement is still ours, from before.
    assert last_statement(pid) == before
    assert "before the check" in before[0]


def test_a_connection_the_server_closed_is_replaced():
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    with other_connection() as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    # The server's goodbye reaches the idle socket shortly after.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and connection.is_usable():
        time.sleep(0.05)
    assert not connection.is_usable()

    health_check_run()

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        new_pid = cursor.fetchone()[0]
    assert new_pid != old_pid


def test_a_connection_in_a_failed_transaction_is_not_usable():
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = False
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            raw.execute("SELECT 1 / 0")
        assert not connection.is_usable()
    finally:
        raw.rollback()
        raw.autocommit = True
