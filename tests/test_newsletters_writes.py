"""The contract of ``signalpost.newsletters.writes``: each fast path writes what Django would."""

from datetime import UTC, datetime, timedelta

import pytest

from signalpost.accounts.models import Profile
from signalpost.newsletters import selectors
from signalpost.newsletters.models import Subscription, Suppression
from signalpost.newsletters.suppressions import email_hash
from signalpost.newsletters.writes import (
    profile_subscriptions_add_imported,
    subscription_insert,
    suppressions_insert,
)
from tests.factories import make_newsletter, make_profile
from tests.row_helpers import assert_recent, row


@pytest.mark.django_db
def test_a_subscription_row_equals_the_row_save_writes():
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    fields = {
        "profile": make_profile(),
        "newsletter": make_newsletter(),
        "status": Subscription.Status.UNSUBSCRIBED,
        "source": Subscription.Source.API,
        "requested_at": moment,
        "subscribed_at": moment + timedelta(days=1),
        "unsubscribed_at": moment + timedelta(days=2),
        "bounced_at": None,
        "complained_at": None,
        "unsubscribe_reason": "Too many emails",
        "consent_at": moment,
        # Not in canonical form: stored only after the field's conversion.
        "consent_ip": "2001:0DB8:0000:0000:0000:0000:0000:0001",
        "consent_user_agent": "Mozilla/5.0 (ünïcode)",
    }
    by_save = Subscription.objects.create(**fields)
    written_by_save = row(Subscription, by_save.pk)
    by_save.delete()  # (profile, newsletter) is unique: the same pair again, by subscription_insert
    inserted = Subscription(**fields)

    assert subscription_insert(subscription=inserted) is inserted

    assert row(Subscription, inserted.pk) == written_by_save
    assert written_by_save["consent_ip"] == "2001:db8::1"
    assert_recent(Subscription.objects.get(pk=inserted.pk).created_at)


@pytest.mark.django_db
def test_imported_subscriptions_join_profile_subscriptions_as_bulk_create_joins_them(
    monkeypatch,
):
    """The one-statement path and the ORM's (no batch CTE) add the same m2m rows."""
    already = make_profile(email="already@example.com")

    def added(*, cte):
        newsletter = make_newsletter()
        already.subscriptions.add(newsletter)
        ids = [
            Subscription.objects.create(profile=profile, newsletter=newsletter, status=status).pk
            for profile, status in [
                (make_profile(), Subscription.Status.ACTIVE),
                (make_profile(), Subscription.Status.PENDING),
                (already, Subscription.Status.ACTIVE),
            ]
        ]
        if not cte:
            monkeypatch.setattr(selectors, "subscriptions_batch_cte", lambda **kwargs: None)
        profile_subscriptions_add_imported(newsletter=newsletter, subscription_ids=ids)
        monkeypatch.undo()
        return sorted(
            (profile.email == "already@example.com", subscription.status)
            for profile in Profile.objects.filter(subscriptions=newsletter)
            for subscription in Subscription.objects.filter(profile=profile, newsletter=newsletter)
        )

    assert added(cte=True) == added(cte=False) == [(False, "active"), (True, "active")]


@pytest.mark.django_db
def test_suppression_rows_equal_the_rows_bulk_create_writes_and_skip_the_same_conflicts():
    letter = make_newsletter()
    moment = datetime(2024, 2, 2, 12, 0, 0, 123456, tzinfo=UTC)

    def rows():
        return [
            Suppression(
                email=f"{name}@example.com",
                email_hash=email_hash(f"{name}@example.com"),
                newsletter=newsletter,
                reason=reason,
                source="import:mailchimp",
                suppressed_at=moment,
            )
            for name, newsletter, reason in [
                ("ann", letter, "unsubscribed"),
                ("bo", None, "cleaned"),
                ("bo", None, "bounced"),  # the same address for every newsletter: skipped
            ]
        ]

    Suppression.objects.bulk_create(rows(), ignore_conflicts=True)
    by_bulk_create = [
        row(Suppression, pk)
        for pk in Suppression.objects.order_by("pk").values_list("pk", flat=True)
    ]
    Suppression.objects.all().delete()

    suppressions_insert(
        rows=[
            (r.email, r.email_hash, r.newsletter_id, r.reason, r.source, r.suppressed_at)
            for r in rows()
        ]
    )

    stored = Suppression.objects.order_by("pk")
    assert [row(Suppression, item.pk) for item in stored] == by_bulk_create
    assert len(by_bulk_create) == 2
    for item in stored:
        assert_recent(item.created_at)
