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
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

_statements: dict[
    tuple[type[Model], str, str], tuple[str, list[Field[Any, Any]], list[Field[Any, Any]], bool]
] = {}
_selects: dict[
    tuple[type[Model], str, str], tuple[str, list[str], list[tuple[int, Any, list[Any]]]]
] = {}


def row_insert(instance: Model, *, on_conflict: str = "") -> bool:
    """INSERT the unsaved ``instance`` as ``save()`` would; return whether a row was written.

    ``pre_save`` and ``post_save`` are sent as ``save()`` sends them, so their
    receivers (django-tasks-db sets a task's ``run_after`` in one) see no
    difference. Database-generated columns (the auto primary key) are read back
    into the instance. With ``on_conflict`` (such as ``"ON CONFLICT (...) DO
    NOTHING"``) an insert the clause skips writes nothing, sends no
    ``post_save`` and returns ``False``. Models with parents (multi-table
    inheritance) are not supported.
    """
    model = type(instance)
    meta = model._meta
    if meta.parents:
        raise TypeError(f"row_insert does not support {meta.label}: it inherits a table")
    using = router.db_for_write(model, instance=instance)
    connection = connections[using]
    # As save() does: an unsaved related object is an error, not a NULL. (A private
    # method of Model, which the stubs leave out.)
    instance._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=None)
    key = (model, using, on_conflict)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _insert_statement(model, connection, on_conflict)
    sql, fields, returning, reads_back = statement
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone() if reads_back else ()
    if row is None:
        return False
    for field, value in zip(returning, row, strict=False):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = using
    post_save.send(
        sender=model, instance=instance, created=True, update_fields=None, raw=False, using=using
    )
    return True


def _insert_statement(
    model: type[Model], connection: BaseDatabaseWrapper, on_conflict: str
) -> tuple[str, list[Field[Any, Any]], list[Field[Any, Any]], bool]:
    meta = model._meta
    if any(field.has_db_default() for field in meta.local_concrete_fields):
        # save() sends a value set on such a field; this statement would drop it.
        raise TypeError(f"row_insert does not support {meta.label}: it has database defaults")
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    fields = [field for field in meta.local_concrete_fields if not field.db_returning]
    returning = [field for field in meta.local_concrete_fields if field.db_returning]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
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
    with connection.cursor() as cursor:
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
