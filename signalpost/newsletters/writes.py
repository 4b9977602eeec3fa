"""Row-level writes to subscriptions that skip the ORM's per-query machinery.

This is the newsletters app's persistence module: services and receivers call
these functions and never look at ``_state`` or the database vendor
themselves. Each function writes exactly the rows Django's own API would; the
contract tests in ``tests/test_newsletters_writes.py`` hold it to that.
"""

from django.db import connection

from signalpost.accounts.models import Profile
from signalpost.newsletters import selectors
from signalpost.newsletters.models import Subscription
from signalpost.rows import row_insert


def subscription_insert(*, subscription):
    """INSERT the unsaved ``subscription`` as ``subscription.save()`` would.

    The same row, the same ``pre_save``/``post_save`` signals, for a fraction of
    the CPU (``signalpost.rows.row_insert``). Runs in the caller's transaction.
    """
    row_insert(subscription)
    return subscription


def profile_subscriptions_add_imported(*, newsletter, subscription_ids):
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
