"""Row-level writes to subscriptions that skip the ORM's per-query machinery.

This is the newsletters app's persistence module: services and receivers call
these functions and never look at ``_state`` or the database vendor
themselves. Each function writes exactly the rows Django's own API would; the
contract tests in ``tests/test_newsletters_writes.py`` hold it to that (and, for an
import batch, ``test_databases_without_the_sql_path_import_the_same_rows`` and
``test_the_statements_an_import_sends_do_not_depend_on_its_size`` in
``tests/test_import_export.py``, which run the whole import both ways).
"""

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models
from django.db.models.functions import Lower
from django.db.models.options import Options
from django.utils import timezone

from signalpost.accounts.models import Profile, ProfileTag, Tag
from signalpost.newsletters import selectors
from signalpost.newsletters.models import Newsletter, Subscription, Suppression
from signalpost.rows import row_insert, rows_deferred, rows_insert

Status = Subscription.Status

# A suppression row to write: (email, email_hash, newsletter_id or None, reason, source,
# suppressed_at).
SuppressionRow = tuple[str, str, int | None, str, str, datetime]

# A checked import row: (email, name, consent_at, consent_ip, attributes as JSON text or None,
# tags as a JSON list of cleaned names or None).
ImportRow = tuple[str, str, datetime | None, str | None, str | None, str | None]


@dataclass(frozen=True)
class ImportWritten:
    """What one import batch wrote: the new subscriptions' ids, and for each tag the
    profiles that got it (they did not have it before)."""

    subscription_ids: list[int]
    tagged: dict[str, list[int]]


def subscription_insert(*, subscription: Subscription) -> Subscription:
    """INSERT the unsaved ``subscription`` as ``subscription.save()`` would.

    The same row, the same ``pre_save``/``post_save`` signals, for a fraction of
    the CPU (``signalpost.rows.row_insert``). Runs in the caller's transaction.
    """
    row_insert(subscription)
    return subscription


def subscriptions_insert(*, subscriptions: list[Subscription]) -> list[Subscription]:
    """INSERT the unsaved ``subscriptions`` in one statement, each as ``subscription.save()``
    would (the same rows, ``pre_save``/``post_save`` each, ids set); return them.

    For a batch of sign-ups of new addresses (``services.subscribe_new_addresses``). Runs
    in the caller's transaction.
    """
    return rows_insert(subscriptions)


def receiver_rows_held_back() -> AbstractContextManager[None]:
    """Hold back the activity and task rows that receivers write inside the block, and
    write them at its end, one INSERT per table, in the caller's transaction
    (``rows.rows_deferred``): a batch of sign-ups' signals (or of recorded clicks,
    ``engagement.services.hits_record``) then cost one statement per table, not one per
    person and receiver."""
    return rows_deferred()


def batches_written_concurrently() -> bool:
    """Return whether several connections may write import batches at the same time.

    PostgreSQL only: SQLite lets one connection write at a time, so more writers
    would only wait for its lock.
    """
    return connection.vendor == "postgresql"


def subscriptions_insert_imported(
    *, rows: Sequence[ImportRow], newsletter: Newsletter, now: datetime, status: str
) -> ImportWritten:
    """Write one import batch: a profile for each new address, a subscription for each
    profile not yet subscribed to ``newsletter``, each row's tags on its profile; return
    the new subscriptions' ids and who got which tag.

    ``rows`` holds checked ``(email, name, consent_at, consent_ip, attributes, tags)``
    tuples; ``attributes`` (JSON text, or ``None`` for none) is a new profile's, and an
    existing profile keeps its own; ``tags`` (a JSON list of cleaned names, or ``None``)
    are added to any profile, new or known. On PostgreSQL
    and SQLite by ``batch_write_sql``, elsewhere by ``batch_write_portable`` (``bulk_create``):
    the same rows either way.
    """
    if connection.vendor in ("postgresql", "sqlite"):
        return batch_write_sql(rows=rows, newsletter=newsletter, now=now, status=status)
    return batch_write_portable(rows=rows, newsletter=newsletter, now=now, status=status)


def batch_write_portable(
    *, rows: Sequence[ImportRow], newsletter: Newsletter, now: datetime, status: str
) -> ImportWritten:
    Profile.objects.bulk_create(
        [
            Profile(email=email, name=name, attributes=json.loads(attributes) if attributes else {})
            for email, name, _, _, attributes, _ in rows
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    profile_ids = dict(
        Profile.objects.filter(email__in=[row[0] for row in rows]).values_list("email", "id")
    )
    existing = set(
        Subscription.objects.filter(
            newsletter=newsletter, profile_id__in=profile_ids.values()
        ).values_list("profile_id", flat=True)
    )
    fresh = [
        Subscription(
            profile_id=profile_ids[email],
            newsletter=newsletter,
            status=status,
            source=Subscription.Source.IMPORT,
            subscribed_at=now if status == Status.ACTIVE else None,
            requested_at=now if status == Status.PENDING else None,
            consent_at=consent_at or now,
            consent_ip=consent_ip,
        )
        for email, _, consent_at, consent_ip, _, _ in rows
        if profile_ids[email] not in existing
    ]
    Subscription.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=500)
    subscription_ids = list(
        Subscription.objects.filter(
            newsletter=newsletter, profile_id__in=[s.profile_id for s in fresh]
        ).values_list("id", flat=True)
    )
    return ImportWritten(subscription_ids, _tags_add_portable(rows=rows, profile_ids=profile_ids))


def _tags_add_portable(
    *, rows: Sequence[ImportRow], profile_ids: dict[str, int]
) -> dict[str, list[int]]:
    wanted = {(profile_ids[row[0]], name) for row in rows if row[5] for name in json.loads(row[5])}
    if not wanted:
        return {}
    names = sorted({name for _, name in wanted})
    Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
    had = set(
        ProfileTag.objects.filter(
            profile_id__in={profile_id for profile_id, _ in wanted}, tag_id__in=tag_ids.values()
        ).values_list("profile_id", "tag__name")
    )
    fresh = sorted(wanted - had)
    ProfileTag.objects.bulk_create(
        [ProfileTag(profile_id=profile_id, tag_id=tag_ids[name]) for profile_id, name in fresh],
        ignore_conflicts=True,
    )
    tagged: dict[str, list[int]] = defaultdict(list)
    for profile_id, name in fresh:
        tagged[name].append(profile_id)
    return dict(tagged)


# Each batch is loaded here, then written by two INSERT ... SELECTs. On SQLite the columns are
# untyped on purpose: a text column would give the comparison with lower(p.email) text affinity,
# which keeps SQLite off the expression index on lower(email) (144 s instead of 1.9 s for
# 20,000 rows).
IMPORT_TABLE = "signalpost_import"
IMPORT_TABLE_CREATE = {
    "postgresql": f"CREATE TEMPORARY TABLE IF NOT EXISTS {IMPORT_TABLE} "
    "(email text, name text, consent_at timestamptz, consent_ip inet, attributes jsonb, "
    "tags jsonb) ON COMMIT DELETE ROWS",
    "sqlite": f"CREATE TEMP TABLE IF NOT EXISTS {IMPORT_TABLE} "
    "(email, name, consent_at, consent_ip, attributes, tags)",
}
IMPORT_COLUMNS = "email, name, consent_at, consent_ip, attributes, tags"
# A row's tags, each a row t of a table function of the JSON list (its name: t.value); put
# the list's column in {}.
TAG_ELEMENTS = {
    "postgresql": "CROSS JOIN jsonb_array_elements_text({}) t",
    "sqlite": "JOIN json_each({}) t",
}
# Keeps the planner from pulling the derived table up into the INSERT's SELECT, where the
# profile lookup would run twice a row, once for the filter and once for the value (EXPLAIN
# shows two SubPlans without it). SQLite has no OFFSET without LIMIT.
SUBQUERY_FENCE = {"postgresql": "OFFSET 0", "sqlite": "LIMIT -1 OFFSET 0"}


def batch_write_sql(
    *, rows: Sequence[ImportRow], newsletter: Newsletter, now: datetime, status: str
) -> ImportWritten:
    """Load the batch into a temporary table, then two INSERT ... SELECTs (two more when
    a row has tags, ``_tags_insert_sql``); return what it wrote (PostgreSQL and SQLite).

    The SQL text is the same for every batch: SQLite's statement cache keeps each distinct
    statement compiled, and statements sized to the batch made its memory grow with the file.
    """
    vendor = connection.vendor
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    adapt = connection.ops.adapt_datetimefield_value
    now_value = adapt(now)
    profile, subscription = Profile._meta, Subscription._meta

    def columns(meta: Options[Any], *names: str) -> str:
        # get_field may return a relation's reverse side; these names are concrete fields.
        return ", ".join(quote(meta.get_field(name).column) for name in names)  # type: ignore[union-attr]

    profile_id, profile_email = columns(profile, "id"), columns(profile, "email")
    # WHERE true: without a WHERE, SQLite would read ON CONFLICT as a join's ON.
    profile_insert = (
        f"INSERT INTO {quote(profile.db_table)} "
        f"({columns(profile, 'email', 'name', 'attributes', 'soft_bounce_count')}, "
        f"{columns(profile, 'created_at', 'updated_at')}) "
        f"SELECT email, name, COALESCE(attributes, '{{}}'), 0, %s, %s FROM {IMPORT_TABLE} "
        "WHERE true ORDER BY email ON CONFLICT DO NOTHING"
    )
    # Both INSERTs take the batch in address order. Two writers whose batches share new
    # addresses then wait for each other's unique-index entries in the same order, and one
    # waits for the other instead of deadlocking.
    # One index probe on lower(email) per row, whatever the size of the profile table: a join
    # from the temporary table, which has no statistics, made PostgreSQL hash the whole profile
    # table every batch. A row whose profile has vanished since (erased by someone else)
    # finds none and is skipped, as the join skipped it.
    subscription_insert = (
        f"INSERT INTO {quote(subscription.db_table)} ("
        f"{columns(subscription, 'profile', 'newsletter', 'status', 'source', 'created_at')}, "
        f"{columns(subscription, 'subscribed_at', 'requested_at', 'unsubscribe_reason')}, "
        f"{columns(subscription, 'consent_at', 'consent_ip', 'consent_user_agent')}) "
        "SELECT b.profile_id, %s, %s, %s, %s, %s, %s, '', COALESCE(b.consent_at, %s), "
        "b.consent_ip, '' FROM ("
        f"SELECT (SELECT p.{profile_id} FROM {quote(profile.db_table)} p "
        f"WHERE lower(p.{profile_email}) = i.email) AS profile_id, i.email, i.consent_at, "
        f"i.consent_ip FROM {IMPORT_TABLE} i {SUBQUERY_FENCE[vendor]}) b "
        "WHERE b.profile_id IS NOT NULL ORDER BY b.email "
        f"ON CONFLICT DO NOTHING RETURNING {columns(subscription, 'id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(IMPORT_TABLE_CREATE[vendor])
        if vendor == "postgresql":
            # The temporary table has no statistics, so PostgreSQL guesses 100 tags a row
            # (jsonb_array_elements_text) and a cost past jit_above_cost: it then compiled the
            # tags' INSERT for ~240 ms a batch to run it in ~10 (bench/README.md, Import).
            # Off for the batch's transaction only (SET LOCAL: safe behind a pooler).
            cursor.execute("SET LOCAL jit = off")
            with cursor.cursor.copy(f"COPY {IMPORT_TABLE} ({IMPORT_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(
                f"INSERT INTO {IMPORT_TABLE} ({IMPORT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (email, name, adapt(consent_at), consent_ip, attributes, tags)
                    for email, name, consent_at, consent_ip, attributes, tags in rows
                ],
            )
        cursor.execute(profile_insert, [now_value, now_value])
        cursor.execute(
            subscription_insert,
            [
                newsletter.pk,
                status,
                Subscription.Source.IMPORT.value,
                now_value,
                now_value if status == Status.ACTIVE else None,
                now_value if status == Status.PENDING else None,
                now_value,
            ],
        )
        created_ids = [row[0] for row in cursor.fetchall()]
        tagged = _tags_insert_sql(cursor, now_value) if any(row[5] for row in rows) else {}
        if vendor == "sqlite":
            # PostgreSQL empties the table at commit (ON COMMIT DELETE ROWS); SQLite cannot.
            cursor.execute(f"DELETE FROM {IMPORT_TABLE}")
    return ImportWritten(created_ids, tagged)


def _tags_insert_sql(cursor: Any, now_value: Any) -> dict[str, list[int]]:
    """Add the loaded batch's tags: the tags no profile had yet, then a (profile, tag) row
    for each that is new; return ``{tag name: [profile ids]}`` for those rows.

    Two statements whatever the batch's size; each row's profile is found by the same
    index probe on ``lower(email)`` as the subscription's.
    """
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    tags, links, profile = quote(Tag._meta.db_table), ProfileTag._meta, Profile._meta
    elements = TAG_ELEMENTS[connection.vendor]
    cursor.execute(
        f"INSERT INTO {tags} (name, created_at) SELECT DISTINCT t.value, %s FROM {IMPORT_TABLE} i "
        f"{elements.format('i.tags')} WHERE i.tags IS NOT NULL "
        "ORDER BY t.value ON CONFLICT DO NOTHING",
        [now_value],
    )
    # The profile is found once a row, then joined to each of its tags (found once a tag,
    # it was probed twice for a row with two tags: bench/README.md, # Import).
    cursor.execute(
        f"INSERT INTO {quote(links.db_table)} (profile_id, tag_id, created_at) "
        "SELECT b.profile_id, g.id, %s FROM ("
        f"SELECT (SELECT p.id FROM {quote(profile.db_table)} p WHERE lower(p.email) = i.email) "
        f"AS profile_id, i.tags FROM {IMPORT_TABLE} i WHERE i.tags IS NOT NULL "
        f"{SUBQUERY_FENCE[connection.vendor]}) b {elements.format('b.tags')} "
        f"JOIN {tags} g ON g.name = t.value WHERE b.profile_id IS NOT NULL "
        "ORDER BY b.profile_id, g.id ON CONFLICT DO NOTHING RETURNING tag_id, profile_id",
        [now_value],
    )
    by_tag_id: dict[int, list[int]] = defaultdict(list)
    for tag_id, profile_id in cursor.fetchall():
        by_tag_id[tag_id].append(profile_id)
    names = dict(Tag.objects.filter(pk__in=by_tag_id).values_list("id", "name"))
    return {names[tag_id]: sorted(ids) for tag_id, ids in sorted(by_tag_id.items())}


def profile_subscriptions_add_imported(
    *, newsletter: Newsletter, subscription_ids: list[int]
) -> None:
    """Add ``newsletter`` to ``profile.subscriptions`` for each active one of ``subscription_ids``.

    The rows ``through.objects.bulk_create(..., ignore_conflicts=True)`` writes, in one
    ``INSERT ... SELECT`` where the database has the batch CTE.
    """
    field = Profile.subscriptions.field
    through = Profile.subscriptions.through
    batch = selectors.subscriptions_batch_cte(subscription_ids=subscription_ids)
    if batch is None:
        profile_ids = Subscription.objects.filter(
            id__in=subscription_ids, status=Subscription.Status.ACTIVE
        ).values_list("profile_id", flat=True)
        through.objects.bulk_create(
            [
                through(profile_id=profile_id, newsletter_id=newsletter.pk)
                for profile_id in profile_ids
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        return
    # Set-based: an instance per row, then bulk_create compiling it, cost more than the
    # import's own writes (bench/README.md, # Import).
    batch_sql, batch_params = batch
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"{batch_sql}INSERT INTO {quote(through._meta.db_table)} "
            f"({quote(field.m2m_column_name())}, {quote(field.m2m_reverse_name())}) "
            "SELECT profile_id, %s FROM batch WHERE status = %s ON CONFLICT DO NOTHING",
            [*batch_params, newsletter.pk, Subscription.Status.ACTIVE.value],
        )


def _among(values: Sequence[str]) -> tuple[str, list[str] | str] | None:
    """SQL that asks whether a text is among ``values`` (put it after the expression),
    with its one parameter: an array (PostgreSQL) or JSON text (SQLite), so the statement's
    text is the same whatever their number. ``None`` on other databases."""
    if connection.vendor == "postgresql":
        return "= ANY(%s::text[])", _text_array(values)
    if connection.vendor == "sqlite":
        return "IN (SELECT value FROM json_each(%s))", json.dumps(list(values))
    return None


def _text_array(values: Sequence[str]) -> str:
    """``values`` as one PostgreSQL array literal (each element quoted, so any text is
    itself): Django's psycopg cursors bind parameters on the client, where psycopg quoted a
    list of 5,000 hashes element by element: 40 ms a statement against 11 for the literal
    (loaded machine, bench/README.md, # Import), and an import batch asks one or three."""
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in quoted) + "}"


def suppressed_hashes_among(*, hashes: Sequence[str], newsletter_id: int) -> set[str]:
    """Return which of ``hashes`` have a suppression for newsletter ``newsletter_id`` or for
    every newsletter: what ``Suppression.objects.filter(...).values_list("email_hash")``
    gives, in one statement whose text is the same for every batch (``_among``, as
    ``selectors.subscriptions_batch_cte``)."""
    meta = Suppression._meta
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    column = quote(meta.get_field("email_hash").column)
    newsletter = quote(meta.get_field("newsletter").column)
    among = _among(hashes)
    if among is None:
        return set(
            Suppression.objects.filter(email_hash__in=hashes)
            .filter(models.Q(newsletter__isnull=True) | models.Q(newsletter_id=newsletter_id))
            .values_list("email_hash", flat=True)
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM {quote(meta.db_table)} WHERE {column} {among[0]} "
            f"AND ({newsletter} IS NULL OR {newsletter} = %s)",
            [among[1], newsletter_id],
        )
        return {row[0] for row in cursor.fetchall()}


def suppression_keys_among(*, hashes: Sequence[str]) -> set[tuple[str, int | None]]:
    """Return ``(email_hash, newsletter_id)`` of every suppression row of ``hashes``: what
    ``Suppression.objects.filter(email_hash__in=hashes).values_list("email_hash",
    "newsletter_id")`` gives, in one statement with one parameter (``_among``): with 5,000
    parameters, building and sending the ORM's statement cost more than running it."""
    among = _among(hashes)
    if among is None:
        return set(
            Suppression.objects.filter(email_hash__in=hashes).values_list(
                "email_hash", "newsletter_id"
            )
        )
    meta = Suppression._meta
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    column = quote(meta.get_field("email_hash").column)
    newsletter = quote(meta.get_field("newsletter").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column}, {newsletter} FROM {quote(meta.db_table)} WHERE {column} {among[0]}",
            [among[1]],
        )
        return {(hashed, newsletter_id) for hashed, newsletter_id in cursor.fetchall()}


def live_subscription_ids_of(
    *, emails: Sequence[str], statuses: Sequence[str], newsletter_id: int | None
) -> list[int]:
    """Return the ids of the subscriptions in ``statuses`` (in newsletter ``newsletter_id``,
    or any) of the profiles whose address, lower-cased, is among ``emails``: one statement
    with the addresses as one parameter (``_among``).

    On PostgreSQL each address is one probe of the index on ``lower(email)``, then one of
    the subscriptions' ``(profile, newsletter)`` index, whatever the statistics say. The
    semi-join this was before let the planner choose: right after an import's first
    batches, with statistics that still counted its tables empty, it read all 88,163 of a
    newsletter's subscriptions and their profiles for 5,000 addresses (284 ms, 266,000
    buffers, for each batch of an export's unsubscribed file; bench/README.md, # Import).
    """
    profiles = Profile.objects.alias(email_lower=Lower("email"))
    subscriptions = Subscription.objects.filter(status__in=statuses)
    if newsletter_id is not None:
        subscriptions = subscriptions.filter(newsletter_id=newsletter_id)
    among = _among(emails)
    if among is None:
        return list(
            subscriptions.filter(
                profile__in=profiles.filter(email_lower__in=emails).values("pk")
            ).values_list("pk", flat=True)
        )
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    profile, subscription = Profile._meta, Subscription._meta

    def column(meta: Options[Any], name: str) -> str:
        return quote(meta.get_field(name).column)  # type: ignore[union-attr]

    status = f"{column(subscription, 'status')} IN ({', '.join(['%s'] * len(statuses))})"
    newsletter = f"AND {column(subscription, 'newsletter')} = %s " if newsletter_id else ""
    subscription_id = column(subscription, "id")
    if connection.vendor == "postgresql":
        # LATERAL subqueries fenced with OFFSET 0 are never flattened into a join: each
        # runs once per address, as a probe.
        sql = (
            f"SELECT s.id FROM unnest(%s::text[]) AS e(email), LATERAL ("
            f"SELECT {column(profile, 'id')} AS id FROM {quote(profile.db_table)} "
            f"WHERE lower({column(profile, 'email')}) = e.email OFFSET 0) AS p, LATERAL ("
            f"SELECT {subscription_id} AS id FROM {quote(subscription.db_table)} "
            f"WHERE {column(subscription, 'profile')} = p.id AND {status} {newsletter}"
            "OFFSET 0) AS s"
        )
        params = [among[1], *statuses, *([newsletter_id] if newsletter_id else [])]
    else:
        sql = (
            f"SELECT {subscription_id} FROM {quote(subscription.db_table)} "
            f"WHERE {status} {newsletter}AND {column(subscription, 'profile')} IN ("
            f"SELECT {column(profile, 'id')} FROM {quote(profile.db_table)} "
            f"WHERE lower({column(profile, 'email')}) {among[0]})"
        )
        params = [*statuses, *([newsletter_id] if newsletter_id else []), among[1]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# The text columns of a SuppressionRow: email, email_hash, reason, source.
TEXT_COLUMNS = frozenset({0, 1, 3, 4})


def suppressions_insert(*, rows: Sequence[SuppressionRow]) -> None:
    """INSERT the suppression ``rows``, skipping any whose address is already suppressed
    there: the rows ``bulk_create(..., ignore_conflicts=True)`` writes for the same
    ``Suppression`` objects.

    ``bulk_create`` compiled every value of every object, ~100 µs a row, as much as the
    rest of an import row costs (bench/README.md, # Import); the objects themselves cost
    ~6 µs each more. On PostgreSQL one INSERT ... SELECT FROM unnest(arrays) writes the
    batch: run as 5,000 pipelined statements it took about twice as long, and made an
    export's unsubscribed and cleaned files the slowest part of its import
    (bench/README.md, the Mailchimp export). Elsewhere one statement text run by
    ``executemany``.
    """
    if not rows:
        return
    meta = Suppression._meta
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    names = ["email", "email_hash", "newsletter", "reason", "source", "suppressed_at", "created_at"]
    # Concrete fields: a column each (the stubs allow a reverse relation).
    columns = ", ".join(quote(meta.get_field(name).column) for name in names)  # type: ignore[union-attr]
    insert = f"INSERT INTO {quote(meta.db_table)} ({columns}) "
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"{insert} SELECT email, email_hash, newsletter_id, reason, source, "
                "suppressed_at, %s FROM unnest(%s::text[], %s::text[], %s::bigint[], "
                "%s::text[], %s::text[], %s::timestamptz[]) "
                "AS batch (email, email_hash, newsletter_id, reason, source, suppressed_at) "
                "ON CONFLICT DO NOTHING",
                [
                    now,
                    *(
                        _text_array(values) if number in TEXT_COLUMNS else list(values)
                        for number, values in enumerate(zip(*rows, strict=True))
                    ),
                ],
            )
            return
        adapt = connection.ops.adapt_datetimefield_value
        now_value = adapt(now)
        cursor.executemany(
            f"{insert} VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT DO NOTHING",
            [(*row[:5], adapt(row[5]), now_value) for row in rows],
        )
