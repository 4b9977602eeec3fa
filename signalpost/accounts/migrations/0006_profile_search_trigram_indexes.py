"""Staff search profiles by any part of an address or name: trigram indexes, on PostgreSQL.

The admin's search is ``icontains``, which PostgreSQL runs as
``UPPER(email::text) LIKE UPPER('%term%')``: with a GIN trigram index on that very
expression (pg_trgm, a trusted extension shipped with PostgreSQL) a search among a
million profiles reads a few index pages instead of every row. Built CONCURRENTLY,
so a deployment's profiles stay writable while it builds. Not on SQLite, which has
no such index: there the search reads every row, as before.
"""

from django.db import migrations

INDEXES = {
    "accounts_profile_email_upper_trgm": "UPPER(email::text)",
    "accounts_profile_name_upper_trgm": "UPPER(name::text)",
}


def trigram_indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON accounts_profile "
            f"USING gin ({expression} gin_trgm_ops)"
        )


def trigram_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("accounts", "0005_profile_soft_bounces"),
    ]

    operations = [
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop, elidable=False),
    ]
