"""Row-level writes to the activity trail that skip the ORM's per-query machinery.

This is the activity app's persistence module: services and receivers call
these functions and never look at ``_state`` or the database vendor
themselves. Each function writes exactly the rows Django's own API would; the
contract tests in ``tests/test_activity_writes.py`` hold it to that.
"""

from django.db import connection
from django.utils import timezone

from signalpost.activity.models import Activity
from signalpost.newsletters import selectors
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.rows import row_insert

# The detail {"source": ..., "status": ...} that Activity(detail=...) would hold, built by the
# database from each subscription's status. On SQLite it is spelled as json.dumps writes it
# (json_object would leave out the spaces) because there JSONField's exact lookup compares
# the stored text: detail={"source": "import", ...} must keep finding these rows.
IMPORTED_DETAIL = {
    "postgresql": "jsonb_build_object('source', %s::text, 'status', status)",
    "sqlite": """'{"source": ' || json_quote(%s) || ', "status": ' || json_quote(status) || '}'""",
}


def activity_insert(*, activity: Activity) -> Activity:
    """INSERT the unsaved ``activity`` as ``activity.save()`` would; return it.

    The same row, the same ``pre_save``/``post_save`` signals, for a fraction of
    the CPU (``signalpost.rows.row_insert``). Runs in the caller's transaction; inside
    ``rows.rows_deferred()`` (a batch of sign-ups) the row is written at the block's end,
    with the batch's others, and its id is set then.
    """
    row_insert(activity, deferrable=True)
    return activity


def activities_insert_imported(
    *, newsletter: Newsletter, subscription_ids: list[int], source: str
) -> None:
    """One ``imported`` activity row per subscription of ``subscription_ids``, detail
    ``{"source": source, "status": <its status>}``.

    The rows ``Activity.objects.bulk_create`` writes, in one ``INSERT ... SELECT``
    where the database has the batch CTE.
    """
    batch = selectors.subscriptions_batch_cte(subscription_ids=subscription_ids)
    if batch is None:
        rows = Subscription.objects.filter(id__in=subscription_ids).values_list(
            "profile_id", "status"
        )
        Activity.objects.bulk_create(
            [
                Activity(
                    profile_id=profile_id,
                    event=Activity.Event.IMPORTED,
                    newsletter=newsletter,
                    detail={"source": source, "status": status},
                )
                for profile_id, status in rows
            ],
            batch_size=1000,
        )
        return
    # Set-based: an Activity per row, then bulk_create compiling it, cost more than the
    # import's own writes (bench/README.md, # Import).
    batch_sql, batch_params = batch
    meta = Activity._meta
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(meta.get_field(name).column)  # type: ignore[arg-type,union-attr]  # concrete fields
        for name in ("profile", "event", "newsletter", "detail", "created_at")
    )
    # created_at as auto_now_add sets it: the application's clock, when the event is recorded.
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"{batch_sql}INSERT INTO {quote(meta.db_table)} ({columns}) "
            f"SELECT profile_id, %s, %s, {IMPORTED_DETAIL[connection.vendor]}, %s FROM batch",
            [*batch_params, Activity.Event.IMPORTED.value, newsletter.pk, source, created_at],
        )
