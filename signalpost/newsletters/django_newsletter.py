"""Importing straight from the database of a Django site that used django-newsletter.

Reads its tables through a database URL (``sqlite:///path`` or ``postgres://...``),
read-only: ``newsletter_newsletter`` (each becomes a Signalpost newsletter with the same
slug, unless one exists) and ``newsletter_subscription`` (its ``email`` and ``name``
columns, or, for a subscription tied to a user, ``auth_user``'s address and names).
Subscribed rows become active subscriptions, with ``subscribe_date`` and ``ip`` as
consent; unsubscribed ones go on the suppression list for their newsletter; rows never
activated are skipped. Each newsletter's rows go through ``imports.subscribers_import``,
the same batches as a file.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.db import DatabaseError, transaction
from django.db.utils import ConnectionHandler

from signalpost.newsletters.imports import ImportFileError, ImportReport, subscribers_import
from signalpost.newsletters.models import Newsletter, Suppression

FORMAT = "django-newsletter"
TABLES = {
    "newsletter_newsletter": ("id", "title", "slug", "email", "sender", "visible"),
    "newsletter_subscription": (
        "id",
        "name",
        "email",
        "ip",
        "create_date",
        "subscribed",
        "subscribe_date",
        "unsubscribed",
        "unsubscribe_date",
        "newsletter_id",
        "user_id",
    ),
}
USER_TABLE = "auth_user"
SLUG_MAX_LENGTH = 60


ALIAS = "django_newsletter_source"


@dataclass
class Source:
    """The other site's database, through a Django connection of its own (read-only)."""

    connection: Any

    @property
    def vendor(self) -> str:
        return str(self.connection.vendor)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def stream(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql``, a few thousand at a time (PostgreSQL: a server-side cursor)."""
        # On PostgreSQL a cursor WITH HOLD (Django's, in autocommit): no transaction needed.
        with self.connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(2000):
                yield from chunk

    def columns(self, table: str) -> set[str] | None:
        """The columns of ``table``, or ``None`` when there is no such table."""
        if self.vendor == "sqlite":
            found = {row[1] for row in self.rows(f'PRAGMA table_info("{table}")')}
        else:
            found = {
                row[0]
                for row in self.rows(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND table_schema = current_schema()",
                    (table,),
                )
            }
        return found or None

    def close(self) -> None:
        self.connection.close()


def source_open(url: str) -> Source:
    """Connect to the database at ``url``; raise ``ImportFileError`` saying what is wrong."""
    url = url.strip()
    scheme = urlsplit(url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImportFileError(
            "the database URL must start sqlite:/// or postgres:// "
            f"(got {scheme[:20] + ':' if scheme else 'no scheme'})"
        )
    try:
        database = dj_database_url.parse(url)
    except ValueError as error:
        raise ImportFileError(f"the database URL is not usable: {error}") from None
    if scheme == "sqlite":
        path = Path(database["NAME"])
        if not path.is_file():
            raise ImportFileError(f"no SQLite database at {str(path)[:200]}")
        database["NAME"] = f"file:{path}?mode=ro"
        database["OPTIONS"] = {"uri": True}
    else:
        database["OPTIONS"] = {
            "connect_timeout": 10,
            "options": "-c default_transaction_read_only=on",
        }
    # A handler of its own: the site's connections never see it. (A handler needs a default.)
    connection = ConnectionHandler({"default": {}, ALIAS: database})[ALIAS]
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            # Reading the schema is what tells a file that is not a database.
            cursor.execute(
                "SELECT count(*) FROM sqlite_master"
                if connection.vendor == "sqlite"
                else "SELECT count(*) FROM information_schema.tables"
            )
    except DatabaseError as error:
        reason = (str(error).strip().splitlines() or ["refused"])[0][:300]
        connection.close()
        raise ImportFileError(f"cannot read the database: {reason}") from None
    return Source(connection)


def source_check(source: Source) -> bool:
    """Raise ``ImportFileError`` naming every missing table or column; return whether the
    user table (for subscriptions tied to a user) can be read."""
    problems = []
    for table, wanted in TABLES.items():
        columns = source.columns(table)
        if columns is None:
            problems.append(f"no table {table}")
            continue
        missing = [column for column in wanted if column not in columns]
        if missing:
            problems.append(f"{table} has no column {', '.join(missing)}")
    if problems:
        raise ImportFileError(
            "not a django-newsletter database: " + "; ".join(problems) + " (nothing was imported)"
        )
    users = source.columns(USER_TABLE) or set()
    return {"email", "first_name", "last_name"} <= users


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rows(source: Source, *, newsletter_id: int, users: bool) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(subscription id, native row, None)`` for one newsletter's subscriptions."""
    if users:
        sql = (
            "SELECT s.id, s.email, s.name, s.ip, s.subscribed, s.subscribe_date, "
            "s.unsubscribed, s.unsubscribe_date, u.email, u.first_name, u.last_name "
            f"FROM newsletter_subscription s LEFT JOIN {USER_TABLE} u ON u.id = s.user_id "
            "WHERE s.newsletter_id = %s ORDER BY s.id"
        )
    else:
        sql = (
            "SELECT s.id, s.email, s.name, s.ip, s.subscribed, s.subscribe_date, "
            "s.unsubscribed, s.unsubscribe_date, NULL, NULL, NULL "
            "FROM newsletter_subscription s WHERE s.newsletter_id = %s ORDER BY s.id"
        )
    for row in source.stream(sql, (newsletter_id,)):
        (number, email, name, ip, subscribed, since, unsubscribed, until, *user) = row
        user_email, first, last = user
        mapped: dict[str, Any] = {
            "email": email or user_email or "",
            "name": name or " ".join(part for part in (first, last) if part),
        }
        try:
            if unsubscribed:
                mapped["suppress"] = Suppression.Reason.UNSUBSCRIBED
                mapped["suppressed_at"] = _moment(until)
            elif subscribed:
                mapped["consent_at"] = _moment(since)
                mapped["consent_ip"] = ip or ""
            else:
                mapped["skip"] = "never activated in django-newsletter"
        except (TypeError, ValueError):
            yield number, None, "subscribe_date or unsubscribe_date is not a time"
            continue
        yield number, mapped, None


@transaction.atomic
def _newsletter_for(*, slug: str, title: str, email: str, sender: str, visible: bool):
    """The Signalpost newsletter for the other site's one: the one with its slug, or a new
    double opt-in newsletter. Returns ``(newsletter, created)``."""
    return Newsletter.objects.get_or_create(
        slug=slug[:SLUG_MAX_LENGTH],
        defaults={
            "name": (title or slug)[:200],
            "sender_email": email or "",
            "sender_name": (sender or "")[:100],
            "is_public": bool(visible),
        },
    )


def django_newsletter_import(
    *, url: str, on_reject=None, on_skip=None, on_progress=None, writers: int = 1
) -> list[tuple[Newsletter, bool, ImportReport]]:
    """Import every newsletter and subscription of the django-newsletter database at
    ``url``; return ``(newsletter, created, report)`` per newsletter.

    The database is checked first (``source_check``): a bad URL or a missing table or
    column raises ``ImportFileError`` before anything is written. Callbacks are
    ``subscribers_import``'s, called with the other site's subscription ids as lines.
    """
    source = source_open(url)
    try:
        users = source_check(source)
        newsletters = source.rows(
            "SELECT id, slug, title, email, sender, visible FROM newsletter_newsletter ORDER BY id"
        )
        results = []
        for newsletter_id, slug, title, email, sender, visible in newsletters:
            newsletter, created = _newsletter_for(
                slug=slug, title=title, email=email, sender=sender, visible=visible
            )
            report = subscribers_import(
                rows=_rows(source, newsletter_id=newsletter_id, users=users),
                format_label=FORMAT,
                newsletter=newsletter,
                on_reject=on_reject,
                on_skip=on_skip,
                on_progress=on_progress,
                writers=writers,
            )
            results.append((newsletter, created, report))
        return results
    finally:
        source.close()
