"""Fewer indexes on deliveries.

A send writes every delivery three times: created, claimed, marked sent. The claim
and the mark change ``status``, which the (issue, status) index holds, so each new
row version gets an entry in every index of the table. Three of the seven (on
PostgreSQL) were never needed: ``issue_id`` leads both the unique (issue, profile)
and the (issue, status) indexes, and ``claimed_by`` (indexed twice, plainly and
for ``LIKE``) is always read with the issue and ``status="sending"``.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("publishing", "0009_issue_is_automated"),
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
    ]
