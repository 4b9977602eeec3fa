"""Fewer indexes on deliveries, and room in each page for a row's next versions.

A send writes every delivery three times: created, claimed, marked sent. The claim
and the mark change ``status``, which the (issue, status) index holds, so each new
row version gets an entry in every index of the table. Three of the seven (on
PostgreSQL) were never needed: ``issue_id`` leads both the unique (issue, profile)
and the (issue, status) indexes, and ``claimed_by`` (indexed twice, plainly and
for ``LIKE``) is always read with the issue and ``status="sending"``. On
PostgreSQL the table also gets ``fillfactor = 80``: new pages keep a fifth free,
so a claimed or sent version can stay on its row's page instead of going to the
table's end (bench/README.md, "Fan-out at 1,000,000").
"""

import django.db.models.deletion
from django.db import migrations, models

FILLFACTOR = 80


def _table_storage(apps, schema_editor, clause):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("publishing", "Delivery")._meta.db_table)
    schema_editor.execute(f"ALTER TABLE {table} {clause}")


def fillfactor_set(apps, schema_editor):
    _table_storage(apps, schema_editor, f"SET (fillfactor = {FILLFACTOR})")


def fillfactor_reset(apps, schema_editor):
    _table_storage(apps, schema_editor, "RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("publishing", "0008_issue_tracked_links"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="claimed_by",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="issue",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="publishing.issue",
            ),
        ),
        migrations.RunPython(fillfactor_set, fillfactor_reset, elidable=False),
    ]
