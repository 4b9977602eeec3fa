"""Receivers that write one activity row per event, in the sender's transaction."""

from django.contrib.auth.signals import user_logged_in
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.activity.services import activity_record
from signalpost.signals import (
    delivery_failed,
    subscribers_imported,
    subscription_requested,
    user_subscribed,
    user_unsubscribed,
)


@receiver(subscription_requested, dispatch_uid="activity.record_subscription_requested")
def activity_record_subscription_requested(sender, *, profile, newsletter, source, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.SUBSCRIPTION_REQUESTED,
        newsletter=newsletter,
        detail={"source": source},
    )


@receiver(user_subscribed, dispatch_uid="activity.record_subscribed")
def activity_record_subscribed(sender, *, profile, newsletter, source, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.SUBSCRIBED,
        newsletter=newsletter,
        detail={"source": source},
    )


@receiver(user_unsubscribed, dispatch_uid="activity.record_unsubscribed")
def activity_record_unsubscribed(sender, *, profile, newsletter, reason, **kwargs):
    activity_record(
        profile=profile,
        event=Activity.Event.UNSUBSCRIBED,
        newsletter=newsletter,
        detail={"reason": reason},
    )


@receiver(user_logged_in, dispatch_uid="activity.record_user_logged_in")
def activity_record_user_logged_in(sender, *, user, **kwargs):
    profile = Profile.objects.filter(user=user).first()
    if profile is not None:
        activity_record(profile=profile, event=Activity.Event.USER_LOGGED_IN)


@receiver(delivery_failed, dispatch_uid="activity.record_delivery_failed")
def activity_record_delivery_failed(sender, *, profile, issue, reason, **kwargs):
    if profile is not None:
        activity_record(
            profile=profile,
            event=Activity.Event.DELIVERY_FAILED,
            newsletter=issue.newsletter,
            detail={"issue": issue.pk, "reason": reason[:500]},
        )


# The detail {"source": ..., "status": ...} that Activity(detail=...) would hold, built by the
# database from each subscription's status. On SQLite it is spelled as json.dumps writes it
# (json_object would leave out the spaces) because there JSONField's exact lookup compares
# the stored text: detail={"source": "import", ...} must keep finding these rows.
IMPORTED_DETAIL = {
    "postgresql": "jsonb_build_object('source', %s::text, 'status', status)",
    "sqlite": """'{"source": ' || json_quote(%s) || ', "status": ' || json_quote(status) || '}'""",
}


@receiver(subscribers_imported, dispatch_uid="activity.record_imported")
def activity_record_imported(sender, *, newsletter, subscription_ids, source, **kwargs):
    """One activity row per imported subscription, in one statement."""
    from signalpost.newsletters.models import Subscription
    from signalpost.newsletters.selectors import subscriptions_batch_cte

    batch = subscriptions_batch_cte(subscription_ids=subscription_ids)
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
        quote(meta.get_field(name).column)
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
