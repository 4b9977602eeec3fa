"""``signalpost.rows.row_insert`` writes the row ``save()`` writes and sends the same
model signals; the durable receivers' task rows are the rows django-tasks' ``enqueue``
writes."""

from datetime import timedelta

import pytest
from django.db.models.signals import post_save, pre_save
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.accounts.services import profile_insert_unless_known
from signalpost.activity.models import Activity
from signalpost.durable.services import durable_call_enqueue
from signalpost.durable.tasks import run_durable_receiver
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.receivers import email_confirmation_request
from signalpost.rows import row_insert
from signalpost.signals import subscription_requested
from tests.factories import make_newsletter, make_profile

pytestmark = pytest.mark.django_db


def stored(model, pk, *, leave_out=("id", "created_at")):
    row = model.objects.filter(pk=pk).values().get()
    return {name: value for name, value in row.items() if name not in leave_out}


def test_an_activity_row_is_the_row_save_writes():
    profile, letter = make_profile(email="ann@example.com"), make_newsletter(slug="weekly")
    fields = {"profile": profile, "event": "subscribed", "newsletter": letter, "detail": {"a": 1}}
    by_save = Activity.objects.create(**fields)
    by_insert = Activity(**fields)

    assert row_insert(by_insert) is True

    assert by_insert.pk is not None and by_insert.pk != by_save.pk
    assert not by_insert._state.adding
    assert stored(Activity, by_insert.pk) == stored(Activity, by_save.pk)
    assert abs(Activity.objects.get(pk=by_insert.pk).created_at - timezone.now()) < timedelta(
        minutes=1
    )


def test_a_subscription_row_is_the_row_save_writes():
    letter = make_newsletter(slug="weekly")
    now = timezone.now()
    fields = {
        "newsletter": letter,
        "status": Subscription.Status.PENDING,
        "source": Subscription.Source.FORM,
        "requested_at": now,
        "consent_at": now,
        "consent_ip": "192.0.2.7",
        "consent_user_agent": "Mozilla/5.0 ünïcode",
    }
    by_save = Subscription.objects.create(profile=make_profile(email="a@example.com"), **fields)
    by_insert = Subscription(profile=make_profile(email="b@example.com"), **fields)

    row_insert(by_insert)

    leave_out = ("id", "created_at", "profile_id")
    assert stored(Subscription, by_insert.pk, leave_out=leave_out) == stored(
        Subscription, by_save.pk, leave_out=leave_out
    )


def test_model_signals_are_sent_as_save_sends_them():
    profile = make_profile(email="ann@example.com")
    heard = []

    def before(sender, **kwargs):
        heard.append(("pre_save", sender, kwargs))
        kwargs["instance"].event = "changed_by_pre_save"

    def after(sender, **kwargs):
        heard.append(("post_save", sender, kwargs))

    pre_save.connect(before, sender=Activity, weak=False)
    post_save.connect(after, sender=Activity, weak=False)
    try:
        activity = Activity(profile=profile, event="subscribed")
        row_insert(activity)
    finally:
        pre_save.disconnect(before, sender=Activity)
        post_save.disconnect(after, sender=Activity)

    assert [(name, sender) for name, sender, _ in heard] == [
        ("pre_save", Activity),
        ("post_save", Activity),
    ]
    (_, _, pre), (_, _, post) = heard
    assert pre["instance"] is post["instance"] is activity
    assert (pre["raw"], pre["using"], pre["update_fields"]) == (False, "default", None)
    assert (post["created"], post["raw"], post["using"], post["update_fields"]) == (
        True,
        False,
        "default",
        None,
    )
    # pre_save ran before the values were read.
    assert Activity.objects.get(pk=activity.pk).event == "changed_by_pre_save"


def test_an_insert_the_conflict_clause_skips_writes_nothing_and_announces_nothing():
    assert profile_insert_unless_known(profile=Profile(email="ann@example.com")) is True
    heard = []

    def after(sender, **kwargs):
        heard.append(kwargs)

    post_save.connect(after, sender=Profile, weak=False)
    try:
        again = Profile(email="ANN@example.com")
        written = profile_insert_unless_known(profile=again)
    finally:
        post_save.disconnect(after, sender=Profile)

    assert written is False
    assert again.pk is None and again._state.adding
    assert heard == []
    assert Profile.objects.count() == 1


def test_a_durable_call_writes_the_task_row_enqueue_writes():
    letter = make_newsletter(slug="weekly", opt_in="double")
    profile = make_profile(email="ann@example.com")
    subscription = Subscription.objects.create(
        profile=profile, newsletter=letter, source="form", status="pending"
    )
    receiver = email_confirmation_request.durable_receiver
    announced = []

    def heard(sender, task_result, **kwargs):
        announced.append(task_result)

    task_enqueued.connect(heard, weak=False)
    try:
        fast_id = durable_call_enqueue(
            durable_receiver=receiver,
            sender=Subscription,
            signal=subscription_requested,
            arguments={
                "profile": profile,
                "newsletter": letter,
                "subscription": subscription,
                "user_email": profile.email,
                "source": "form",
            },
        )
    finally:
        task_enqueued.disconnect(heard)
    fast = DBTaskResult.objects.get(pk=fast_id)
    call = fast.args_kwargs["kwargs"]
    slow = DBTaskResult.objects.get(
        pk=run_durable_receiver.using(queue_name=receiver.policy.queue_name).enqueue(**call).id
    )

    leave_out = ("id", "enqueued_at")
    assert stored(DBTaskResult, fast.pk, leave_out=leave_out) == stored(
        DBTaskResult, slow.pk, leave_out=leave_out
    )
    assert fast.status == "READY"
    assert fast.run_after is not None  # django-tasks-db's pre_save receiver set it
    assert call["receiver"] == receiver.path and call["attempt"] == 1
    assert [str(result.id) for result in announced] == [str(fast.pk)]
