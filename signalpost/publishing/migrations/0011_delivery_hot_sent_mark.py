"""No index on deliveries holds ``status``: the sent mark can be a HOT update.

PostgreSQL writes an entry in every index of the table for each new row version,
unless no indexed column changed and the new version fits on the same page (a
HOT update). The sent mark changes ``status``, ``message_id`` and ``sent_at``:
with the (issue, status) index gone, none of them is indexed. The claim finds
queued deliveries as the issue's unclaimed ones, through (issue, claimed_by).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("publishing", "0010_delivery_fewer_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                fields=["issue", "claimed_by"], name="publishing_delivery_claim"
            ),
        ),
        migrations.RemoveIndex(
            model_name="delivery",
            name="publishing__issue_i_ffee25_idx",
        ),
    ]
