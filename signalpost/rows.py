"""Single-row INSERTs and reads for every subscribe, without the ORM's per-query machinery.

A subscribe writes a profile, a subscription, an activity row and a task
row. Through ``Model.save()`` each costs ~0.2 ms of CPU on top of its round
trip, most of it compiling the same INSERT again; ``row_insert`` builds the
statement once per model and only converts the values each time. The row
written is the one ``save()`` would write: the same fields, the same
``pre_save`` values (``auto_now_add``, defaults), the same conversions, the
same model signals. ``row_fetch`` reads one instance by a written-out
condition for half the CPU of ``raw()`` or ``filter().first()``.
``rows_insert_select_for`` writes a batch's rows, one per id, in one INSERT ... SELECT.
``rows_insert`` writes many instances of a model in one INSERT, each as ``row_insert``
would; inside ``rows_deferred()``, the rows of ``row_insert(..., deferrable=True)``
wait for the block's end and go in one INSERT per model, and the work of
``rows_deferred_work`` runs then, once per key for all its items.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

from signalpost.conf import conf
from signalpost.durability import insert_select_without_flush, statement_commits_alone
from signalpost.postgresql.cursors import PreparingCursor

_statements: dict[
    tuple[type[Model], str, str, bool],
    tuple[str, list[Field[Any, Any]], list[Field[Any, Any]], bool],
] = {}
_selects: dict[
    tuple[type[Model], str, str], tuple[str, list[str], list[tuple[int, Any, list[Any]]]]
] = {}


# What row_insert(..., deferrable=True) queued inside rows_deferred(): by (model, database),
# each instance with its values (computed when it was queued, as save() computes them).
type _Pending = dict[tuple[type[Model], str], list[tuple[Model, list[Any]]]]
_deferred: ContextVar[_Pending | None] = ContextVar("rows_deferred", default=None)
# What rows_deferred_work() queued inside rows_deferred(): by key, the function and its items.
type _Work = dict[Any, tuple[Callable[[list[Any]], Any], list[Any]]]
_work_deferred: ContextVar[_Work | None] = ContextVar("rows_deferred_work", default=None)
# psycopg's prepare_threshold on PostgreSQL connections: see _cursor().
NEVER_BY_COUNT = 2**31 - 1
# Rows per multi-row INSERT: well under SQLite's 32,766 parameters for any model here.
ROWS_PER_INSERT = 500


def row_insert(
    instance: Model,
    *,
    on_conflict: str = "",
    deferrable: bool = False,
    commit_without_flush: bool = False,
) -> bool:
    """INSERT the unsaved ``instance`` as ``save()`` would; return whether a row was written.

    ``pre_save`` and ``post_save`` are sent as ``save()`` sends them, so their
    receivers (django-tasks-db sets a task's ``run_after`` in one) see no
    difference. Database-generated columns (the auto primary key) are read back
    into the instance. With ``on_conflict`` (such as ``"ON CONFLICT (...) DO
    NOTHING"``) an insert the clause skips writes nothing, sends no
    ``post_save`` and returns ``False``. Models with parents (multi-table
    inheritance) are not supported.

    ``deferrable``: inside ``rows_deferred()``, the row is not written now but with
    the others at the block's end (still in the caller's transaction), and
    ``post_save`` is sent then; its ``pre_save`` and values are taken now.
    Outside, or with ``on_conflict``, it is written at once.

    ``commit_without_flush``: on PostgreSQL outside a transaction, the INSERT is its
    own transaction and sets ``synchronous_commit`` off for it (``set_config(...,
    true)``), so its commit returns before the row is on disk, in one round trip
    (``signalpost.durability.commit_without_flush`` says what that risks). Inside a
    transaction, or on another database, a plain INSERT: the transaction decides.
    """
    model = type(instance)
    using = router.db_for_write(model, instance=instance)
    values = _values_prepared(instance, using)
    pending = _deferred.get() if deferrable and not on_conflict else None
    if pending is not None:
        pending.setdefault((model, using), []).append((instance, values))
        return True
    connection = connections[using]
    without_flush = commit_without_flush and statement_commits_alone(connection)
    sql, _fields, returning, reads_back = _statement(
        model, using, on_conflict, without_flush=without_flush
    )
    with transaction.mark_for_rollback_on_error(using), _cursor(connection) as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone() if reads_back else ()
    if row is None:
        return False
    _written(instance, using, returning, row)
    return True


def _cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor for one of this module's single-row statements, prepared where it can be.

    Each of these statements is the same text every time (built once per model), run
    for every subscribe. Django's cursors on PostgreSQL bind parameters into the text,
    so the server parses and plans it afresh each time: half of a subscribe POST's
    backend CPU (docs/decisions.md, "A queued sign-up in one statement, prepared"). On
    PostgreSQL, unless ``_prepares`` says no, the cursor binds on the server and psycopg
    prepares each statement on its first run on a connection (again after a rollback,
    on which psycopg deallocates every statement of the connection). It is wrapped as
    ``connection.cursor()`` wraps its own: the same error translation and execute
    wrappers; the query log shows these statements as ``QUERY = ... - PARAMS = ...``.
    """
    if not _prepares(connection):
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django leaves psycopg's preparing off (None), and then even ``prepare=True``
        # prepares nothing. A count no statement reaches: only these, asked for
        # explicitly, are prepared (Django's own cursors bind on the client and never are).
        raw.prepare_threshold = NEVER_BY_COUNT
    cursor: Any = PreparingCursor(raw)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)


def _prepares(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` may keep prepared statements: PostgreSQL reached directly.

    Not behind a transaction pooler, where the next statement may reach a server session
    that does not have it: Signalpost's ``DATABASE_TRANSACTION_POOLING``, or a host
    project's own signs of one, Django's ``DISABLE_SERVER_SIDE_CURSORS`` or an explicit
    ``OPTIONS["prepare_threshold"] = None``.
    """
    settings_dict = connection.settings_dict
    options = settings_dict.get("OPTIONS") or {}
    return not (
        connection.vendor != "postgresql"
        or conf.DATABASE_TRANSACTION_POOLING
        or settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
        or ("prepare_threshold" in options and options["prepare_threshold"] is None)
    )


def _statement(
    model: type[Model], using: str, on_conflict: str, *, without_flush: bool = False
) -> tuple[str, list[Field[Any, Any]], list[Field[Any, Any]], bool]:
    key = (model, using, on_conflict, without_flush)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _insert_statement(
            model, connections[using], on_conflict, without_flush=without_flush
        )
    return statement


def _values_prepared(instance: Model, using: str) -> list[Any]:
    """Send ``pre_save`` for the unsaved ``instance`` and return its INSERT's values, as
    ``save()`` prepares them."""
    model = type(instance)
    if model._meta.parents:
        raise TypeError(f"row_insert does not support {model._meta.label}: it inherits a table")
    connection = connections[using]
    # As save() does: an unsaved related object is an error, not a NULL. (A private
    # method of Model, which the stubs leave out.)
    instance._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=None)
    _sql, fields, _returning, _reads_back = _statement(model, using, "")
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


def _written(
    instance: Model, using: str, returning: list[Field[Any, Any]], row: Sequence[Any]
) -> None:
    """Take a written row's database-generated values into ``instance``; send ``post_save``."""
    for field, value in zip(returning, row, strict=False):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = using
    post_save.send(
        sender=type(instance),
        instance=instance,
        created=True,
        update_fields=None,
        raw=False,
        using=using,
    )


def rows_insert[M: Model](
    instances: Sequence[M], *, on_conflict: str = "", key: str = ""
) -> list[M]:
    """INSERT the unsaved ``instances`` of one model, each as ``row_insert`` would, in one
    statement (per ``ROWS_PER_INSERT``); return the instances written, in their order.

    With ``on_conflict`` some rows may be skipped: ``key`` then names a unique field
    whose value (as the instance holds it) tells which rows were written; the skipped
    ones get ``pre_save`` but no ``post_save``, as with ``row_insert``.
    """
    if not instances:
        return []
    using = router.db_for_write(type(instances[0]), instance=instances[0])
    prepared = [(instance, _values_prepared(instance, using)) for instance in instances]
    return _rows_write(prepared, using, on_conflict=on_conflict, key=key)


def _rows_write[M: Model](
    prepared: list[tuple[M, list[Any]]], using: str, *, on_conflict: str = "", key: str = ""
) -> list[M]:
    model = type(prepared[0][0])
    if on_conflict and not key:
        raise TypeError("rows_insert with on_conflict needs key= to tell written rows apart")
    connection = connections[using]
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    sql, fields, returning, _reads_back = _statement(model, using, "")
    head = sql[: sql.index(" VALUES ")]
    one_row = f"({', '.join(['%s'] * len(fields))})"
    key_field = model._meta.get_field(key) if key else None
    read_back = [*returning, *([key_field] if key_field is not None else [])]
    tail = f" {on_conflict}" if on_conflict else ""
    if read_back:
        tail += f" RETURNING {', '.join(quote(f.column) for f in read_back)}"  # type: ignore[union-attr]
    columns_cast = _unnest_casts(fields, connection)
    written: list[M] = []
    for start in range(0, len(prepared), ROWS_PER_INSERT):
        chunk = prepared[start : start + ROWS_PER_INSERT]
        params: list[Any]
        if columns_cast is not None:
            # One array per column: the statement's text is the same for every batch.
            statement = f"{head} SELECT * FROM UNNEST({columns_cast}){tail}"
            params = [list(c) for c in zip(*(values for _i, values in chunk), strict=True)]
        else:
            statement = f"{head} VALUES {', '.join([one_row] * len(chunk))}{tail}"
            params = [value for _instance, values in chunk for value in values]
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(statement, params)
            rows: list[Sequence[Any]] = cursor.fetchall() if read_back else [()] * len(chunk)
        if key_field is None:
            pairs = [(instance, row) for (instance, _values), row in zip(chunk, rows, strict=True)]
        else:
            by_key = {row[-1]: row for row in rows}
            pairs = [
                (instance, by_key[value])
                for instance, _values in chunk
                if (value := getattr(instance, key_field.attname)) in by_key  # type: ignore[union-attr]
            ]
        for instance, row in pairs:
            _written(instance, using, returning, row)
            written.append(instance)
    return written


def _unnest_casts(fields: list[Field[Any, Any]], connection: BaseDatabaseWrapper) -> str | None:
    """``%s::type[]`` for each of ``fields``, to INSERT rows from one array per column, on
    PostgreSQL when each field's type allows it (the conditions of Django's own
    ``bulk_create``, which does the same); else ``None``: a row of placeholders each.

    A multi-row ``VALUES`` list has a placeholder per value, and psycopg parses such a
    statement afresh every time (it caches statements of at most 50 parameters): ~12 %
    of the worker's CPU per sign-up in a batch (bench/subscribe_worker.py --profile).
    """
    if connection.vendor != "postgresql":
        return None
    casts = []
    for field in fields:
        target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
        if hasattr(field, "get_placeholder_sql") or (
            target.get_internal_type() not in connection.data_types
        ):
            return None
        db_type = field.db_type(connection) or ""
        # varchar[] rather than varchar(50)[]: no value is cut to fit, as in Django.
        casts.append(f"(%s)::{db_type.split('(')[0]}[]")
    return ", ".join(casts)


@contextlib.contextmanager
def rows_deferred() -> Iterator[None]:
    """Hold back the rows of ``row_insert(..., deferrable=True)`` made inside the block, and
    write them when it ends without an error: one INSERT per model (``rows_insert``).

    For a batch whose every item writes the same kinds of rows (a sign-up's activity
    row and its confirmation email's task row): the rows are written in the caller's
    transaction, so they still commit or roll back with it, but nothing in the block
    can read them yet, and their ``post_save`` comes at the end. On an error nothing
    held back is written.
    """
    pending: _Pending = {}
    work: _Work = {}
    token, work_token = _deferred.set(pending), _work_deferred.set(work)
    try:
        yield
    finally:
        _deferred.reset(token)
        _work_deferred.reset(work_token)
    for (_model, using), prepared in pending.items():
        _rows_write(prepared, using)
    for function, items in work.values():
        function(items)


def rows_deferred_work(key: Any, item: Any, function: Callable[[list[Any]], Any]) -> bool:
    """Inside ``rows_deferred()``, add ``item`` to the work named ``key`` and return ``True``:
    at the block's end (after its rows are written, still in the caller's transaction)
    ``function`` is called once with the items of ``key``, in the order they came.
    Outside, return ``False``: the caller does its work for ``item`` now.

    For a receiver whose work is cheaper for many people at once (enrolling a batch of
    sign-ups into a newsletter's automations: one statement for the batch). On an error
    in the block nothing is called.
    """
    work = _work_deferred.get()
    if work is None:
        return False
    work.setdefault(key, (function, []))[1].append(item)
    return True


def _insert_statement(
    model: type[Model], connection: BaseDatabaseWrapper, on_conflict: str, *, without_flush: bool
) -> tuple[str, list[Field[Any, Any]], list[Field[Any, Any]], bool]:
    meta = model._meta
    if any(field.has_db_default() for field in meta.local_concrete_fields):
        # save() sends a value set on such a field; this statement would drop it.
        raise TypeError(f"row_insert does not support {meta.label}: it has database defaults")
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    fields = [field for field in meta.local_concrete_fields if not field.db_returning]
    returning = [field for field in meta.local_concrete_fields if field.db_returning]
    into = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
    if without_flush:
        # The base type (varchar, not varchar(32)): an explicit cast would cut a value
        # that is too long, where the INSERT's own assignment refuses it.
        casts = ((field.cast_db_type(connection) or "").split("(")[0] for field in fields)
        sql = insert_select_without_flush(into, casts)
    else:
        sql = f"{into} VALUES ({', '.join(['%s'] * len(fields))})"
    if on_conflict:
        sql += f" {on_conflict}"
    if returning:
        sql += f" RETURNING {', '.join(quote(f.column) for f in returning)}"
    elif on_conflict:
        # Something must come back to tell a written row from a skipped one.
        sql += " RETURNING 1"
    return sql, fields, returning, bool(returning or on_conflict)


def row_fetch[M: Model](
    model: type[M], *, where: str, params: Sequence[Any], using: str = "default"
) -> M | None:
    """Return the instance of ``model`` whose row matches ``where``, or ``None``.

    ``where`` is SQL over the table's columns (``"slug" = %s``), with ``params``;
    the first matching row is returned. Every concrete field is read and
    converted as the ORM converts it (SQLite's booleans and times, a field's
    ``from_db_value``), and the instance is built by ``Model.from_db``, so it
    is what ``filter(...).first()`` would return.
    """
    connection = connections[using]
    key = (model, using, where)
    select = _selects.get(key)
    if select is None:
        select = _selects[key] = _select_statement(model, connection, where)
    sql, names, converters = select
    with _cursor(connection) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, functions in converters:
        for function in functions:
            values[index] = function(values[index], column, connection)
    return model.from_db(using, names, values)


def _select_statement(
    model: type[Model], connection: BaseDatabaseWrapper, where: str
) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    meta = model._meta
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    fields = meta.concrete_fields
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in fields)} "
        f"FROM {quote(meta.db_table)} WHERE {where} LIMIT 1"
    )
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((index, column, functions))
    return sql, [field.attname for field in fields], converters


def rows_insert_select_for(insert_select: str, params: Sequence[Any], ids: Sequence[int]) -> int:
    """Run ``insert_select``, an INSERT ... SELECT whose ``{ids}`` stands for ``ids``'
    placeholders, with ``ON CONFLICT DO NOTHING``; return how many rows it wrote.

    For writing one row per id of a batch in one statement (the same on PostgreSQL
    and SQLite) where ``bulk_create`` would build an instance per row.
    """
    if not ids:
        return 0
    placeholders = ", ".join(["%s"] * len(ids))
    with connections["default"].cursor() as cursor:
        cursor.execute(
            insert_select.format(ids=placeholders) + " ON CONFLICT DO NOTHING", [*params, *ids]
        )
        written: int = cursor.rowcount
    return written
