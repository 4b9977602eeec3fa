"""Importing straight from a django-newsletter site's database (SQLite and PostgreSQL)."""

import os
import sqlite3
import uuid
from io import StringIO
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Subscription, Suppression
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

# The tables as django-newsletter's migrations make them (newsletter/migrations/0001_initial),
# with Django's auth_user for subscriptions tied to a user account.
SCHEMA = [
    "CREATE TABLE auth_user (id integer PRIMARY KEY, username varchar(150), "
    "email varchar(254), first_name varchar(150), last_name varchar(150))",
    "CREATE TABLE newsletter_newsletter (id integer PRIMARY KEY, title varchar(200), "
    "slug varchar(50) UNIQUE, email varchar(254), sender varchar(200), visible boolean, "
    "send_html boolean)",
    "CREATE TABLE newsletter_subscription (id integer PRIMARY KEY, name varchar(30), "
    "email varchar(254), ip varchar(39), create_date timestamp, activation_code varchar(40), "
    "subscribed boolean, subscribe_date timestamp, unsubscribed boolean, "
    "unsubscribe_date timestamp, newsletter_id integer, user_id integer)",
]
ROWS = [
    "INSERT INTO auth_user VALUES (7, 'grace', 'Grace@Example.com', 'Grace', 'Hopper')",
    "INSERT INTO newsletter_newsletter VALUES (1, 'Python Weekly', 'python-weekly', "
    "'editor@example.com', 'The Editors', TRUE, TRUE)",
    "INSERT INTO newsletter_newsletter VALUES (2, 'Hidden Notes', 'notes', "
    "'notes@example.com', 'Notes', FALSE, TRUE)",
    "INSERT INTO newsletter_subscription VALUES (1, 'Ada', 'ada@example.com', '203.0.113.9', "
    "'2020-01-01 10:00:00', 'a', TRUE, '2020-01-02 11:00:00', FALSE, NULL, 1, NULL)",
    "INSERT INTO newsletter_subscription VALUES (2, NULL, NULL, NULL, '2020-01-01 10:00:00', "
    "'b', TRUE, '2020-02-01 09:00:00', FALSE, NULL, 1, 7)",
    "INSERT INTO newsletter_subscription VALUES (3, 'Left', 'left@example.com', NULL, "
    "'2020-01-01 10:00:00', 'c', FALSE, '2020-01-02 11:00:00', TRUE, '2021-05-05 05:05:05', 1, "
    "NULL)",
    "INSERT INTO newsletter_subscription VALUES (4, 'Never', 'never@example.com', NULL, "
    "'2020-01-01 10:00:00', 'd', FALSE, NULL, FALSE, NULL, 1, NULL)",
    "INSERT INTO newsletter_subscription VALUES (5, 'Bad', 'not an address', NULL, "
    "'2020-01-01 10:00:00', 'e', TRUE, '2020-01-02 11:00:00', FALSE, NULL, 1, NULL)",
    "INSERT INTO newsletter_subscription VALUES (6, 'Ada', 'ada@example.com', NULL, "
    "'2020-01-01 10:00:00', 'f', TRUE, '2020-03-03 11:00:00', FALSE, NULL, 2, NULL)",
]


def sqlite_source(tmp_path, statements=SCHEMA + ROWS):
    path = tmp_path / "old-site.sqlite3"
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    return f"sqlite:///{path}"


def run(url, *extra):
    out = StringIO()
    call_command("import_subscribers", f"--from-django-newsletter={url}", *extra, stdout=out)
    return out.getvalue()


def assert_imported(out):
    assert "Format: django-newsletter." in out
    assert (
        "python-weekly (created): 5 rows: 2 imported, 0 duplicates, 1 rejected, 1 skipped, "
        "1 suppressed"
    ) in out
    assert "notes (created): 1 rows: 1 imported" in out
    weekly = Newsletter.objects.get(slug="python-weekly")
    assert (weekly.name, weekly.sender_email, weekly.sender_name, weekly.is_public) == (
        "Python Weekly",
        "editor@example.com",
        "The Editors",
        True,
    )
    assert Newsletter.objects.get(slug="notes").is_public is False
    ada = Subscription.objects.get(profile__email="ada@example.com", newsletter=weekly)
    assert (ada.status, ada.consent_ip) == ("active", "203.0.113.9")
    assert ada.consent_at.isoformat() == "2020-01-02T11:00:00+00:00"
    grace = Profile.objects.get(email="grace@example.com")
    assert grace.name == "Grace Hopper", "the user account's address and names"
    [left] = Suppression.objects.all()
    assert (left.email, left.newsletter, left.reason) == (
        "left@example.com",
        weekly,
        "unsubscribed",
    )
    assert not Profile.objects.filter(email__in=["never@example.com", "left@example.com"]).exists()


def test_a_django_newsletter_sqlite_database_is_imported_with_its_newsletters(tmp_path):
    assert_imported(run(sqlite_source(tmp_path), f"--report={tmp_path / 'r.csv'}"))
    report = (tmp_path / "r.csv").read_text()
    assert "4,never@example.com,skipped: never activated in django-newsletter" in report
    assert "5,not an address," in report


def test_an_existing_newsletter_of_the_same_slug_receives_the_subscriptions(tmp_path):
    mine = make_newsletter(slug="python-weekly", name="Mine")

    out = run(sqlite_source(tmp_path), f"--report={tmp_path / 'r.csv'}")

    assert "python-weekly (existing)" in out
    assert Newsletter.objects.get(slug="python-weekly").name == "Mine"
    assert mine.subscriptions.filter(status="active").count() == 2


def test_a_database_without_the_subscription_table_is_refused_and_nothing_is_written(tmp_path):
    url = sqlite_source(tmp_path, [SCHEMA[1], ROWS[1]])

    with pytest.raises(CommandError, match="no table newsletter_subscription") as refused:
        run(url)

    assert "nothing was imported" in str(refused.value)
    assert not Newsletter.objects.exists()


def test_a_table_missing_a_column_is_named(tmp_path):
    url = sqlite_source(
        tmp_path, [SCHEMA[1], "CREATE TABLE newsletter_subscription (id integer, email text)"]
    )

    with pytest.raises(CommandError, match="newsletter_subscription has no column name, ip"):
        run(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@127.0.0.1/site", "must start sqlite:/// or postgres://"),
        ("not a url", "must start sqlite:/// or postgres://"),
        ("sqlite:////nonexistent/site.sqlite3", "no SQLite database at /nonexistent"),
        ("postgres://postgres@127.0.0.1:1/site", "cannot read the database"),
    ],
)
def test_a_bad_database_url_gets_a_clear_answer(url, message):
    with pytest.raises(CommandError, match=message):
        run(url)
    assert not Newsletter.objects.exists()


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_text("just some text, long enough to not be a database header at all\n" * 10)

    with pytest.raises(CommandError, match="cannot read the database"):
        run(f"sqlite:///{path}")


def test_the_database_import_takes_no_file_or_newsletter(tmp_path):
    with pytest.raises(CommandError, match="takes no file"):
        run(sqlite_source(tmp_path), "--newsletter=x")


PG_URL = os.environ.get("DATABASE_URL", "")


@pytest.mark.skipif(
    not PG_URL.startswith("postgres"), reason="needs PostgreSQL (DATABASE_URL=postgres://...)"
)
def test_a_django_newsletter_postgresql_database_is_imported(tmp_path):
    name = f"signalpost_django_newsletter_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(PG_URL)
    admin = psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        with psycopg.connect(url) as source:
            for statement in SCHEMA + ROWS:
                source.execute(statement)
        assert_imported(run(url, f"--report={tmp_path / 'r.csv'}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
