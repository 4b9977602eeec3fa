"""``row_insert`` writes the row ``save()`` would write and sends the model signals
``save()`` sends; a durable call's task row is the row django-tasks' ``enqueue`` writes."""

from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.tasks import TaskResultStatus
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult, get_date_max

from signalpost.activity.models import Activity
from signalpost.durable import services as durable_services
from signalpost.durable.tasks import run_durable_receiver
from signalpost.newsletters.models import Newsletter
from signalpost.newsletters.receivers import email_confirmation_request
from signalpost.newsletters.services import subscribe
from signalpost.rows import row_fetch, row_insert
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_profile

CONFIRMATION = email_confirmation_request.durable_receiver


def row(model, pk, *, leave_out=("id", "created_at")):
    """Every column of one stored row, as the database gives it back, but ``leave_out``."""
    values = model.objects.filter(pk=pk).values().get()
    return {column: value for column, value in values.items() if column not in leave_out}


def assert_recent(moment):
    assert moment is not None
    assert abs(timezone.now() - moment) < timedelta(minutes=1)


class Heard:
    """Connects ``handler`` to ``signal`` for the block; keeps every call's arguments."""

    def __init__(self, signal, sender=None, handler=None):
        self.signal, self.sender, self.handler, self.calls = signal, sender, handler, []

    def __call__(self, sender, **kwargs):
        self.calls.append({"sender": sender, **kwargs})
        if self.handler:
            self.handler(sender, **kwargs)

    def __enter__(self):
        self.signal.connect(self, sender=self.sender, weak=False)
        return self

    def __exit__(self, *exc):
        self.signal.disconnect(self, sender=self.sender)


@pytest.mark.django_db
def test_pre_save_and_post_save_get_the_arguments_save_gives_them():
    profile = make_profile()
    by_save, inserted = (Activity(profile=profile, event="subscribed") for _ in range(2))
    with Heard(pre_save, Activity) as pre, Heard(post_save, Activity) as post:
        by_save.save()
        row_insert(inserted)

    [pre_by_save, pre_by_insert] = pre.calls
    [post_by_save, post_by_insert] = post.calls
    assert pre_by_insert["instance"] is inserted and post_by_insert["instance"] is inserted
    assert pre_by_insert == {**pre_by_save, "instance": inserted}
    assert post_by_insert == {**post_by_save, "instance": inserted}
    assert pre_by_insert == {
        "signal": pre_save,
        "sender": Activity,
        "instance": inserted,
        "raw": False,
        "using": "default",
        "update_fields": None,
    }
    assert post_by_insert == {
        "signal": post_save,
        "sender": Activity,
        "instance": inserted,
        "created": True,
        "raw": False,
        "using": "default",
        "update_fields": None,
    }


@pytest.mark.django_db
def test_post_save_sees_the_written_row_and_its_read_back_pk():
    seen = []

    def look(sender, instance, **kwargs):
        seen.append((instance.pk, instance._state.adding, Activity.objects.filter(pk=instance.pk)))

    inserted = Activity(profile=make_profile(), event="subscribed")
    with Heard(post_save, Activity, look):
        row_insert(inserted)

    [(pk, adding, rows)] = seen
    assert pk == inserted.pk and pk is not None
    assert adding is False
    assert rows.exists()


@pytest.mark.django_db
def test_a_pre_save_receiver_changes_what_is_stored():
    def change(sender, instance, **kwargs):
        instance.event = Activity.Event.IMPORTED
        instance.detail = {"changed": "in pre_save"}

    inserted = Activity(profile=make_profile(), event="subscribed")
    with Heard(pre_save, Activity, change):
        row_insert(inserted)

    stored = Activity.objects.get(pk=inserted.pk)
    assert (stored.event, stored.detail) == ("imported", {"changed": "in pre_save"})


def subscribe_and_capture_the_confirmation_task(monkeypatch, newsletter, email):
    """Subscribe to a double opt-in ``newsletter``; return the confirmation task's row id
    and what ``task_enqueued`` was sent with. Fails unless the fast path wrote the row."""
    fast_path_ids = []
    original = durable_services.task_row_insert

    def spy(**kwargs):
        fast_path_ids.append(original(**kwargs))
        return fast_path_ids[-1]

    monkeypatch.setattr(durable_services, "task_row_insert", spy)
    with Heard(task_enqueued) as enqueued, transaction.atomic():
        subscribe(email=email, newsletter=newsletter, source="form")
    [task_id] = [
        pk
        for pk in fast_path_ids
        if DBTaskResult.objects.get(pk=pk).args_kwargs["kwargs"]["receiver"] == CONFIRMATION.path
    ]
    return task_id, enqueued.calls


@pytest.mark.django_db
def test_a_durable_call_writes_the_task_row_enqueue_writes(monkeypatch, double_opt_in_newsletter):
    fast_id, enqueued = subscribe_and_capture_the_confirmation_task(
        monkeypatch, double_opt_in_newsletter, "ann@example.com"
    )
    written_by_subscribe = {str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)}
    fast = DBTaskResult.objects.get(pk=fast_id)
    call = {**fast.args_kwargs["kwargs"], "idempotency_key": "another key"}
    by_enqueue = run_durable_receiver.using(queue_name=CONFIRMATION.policy.queue_name).enqueue(
        **call
    )

    def comparable(pk):
        values = row(DBTaskResult, pk, leave_out=("id", "enqueued_at"))
        del values["args_kwargs"]["kwargs"]["idempotency_key"]
        return values

    assert comparable(fast_id) == comparable(by_enqueue.id)
    assert fast.status == TaskResultStatus.READY
    assert fast.run_after == get_date_max(), "django-tasks-db's pre_save receiver set it"
    assert_recent(fast.enqueued_at)
    assert len(fast.args_kwargs["kwargs"]["idempotency_key"]) == 32
    assert fast.args_kwargs["kwargs"]["attempt"] == 1

    # Each task row the subscribe wrote was announced once, as enqueue announces it.
    assert sorted(call["task_result"].id for call in enqueued) == sorted(written_by_subscribe)
    [announced] = [call for call in enqueued if call["task_result"].id == str(fast_id)]
    assert announced["sender"] is DatabaseBackend
    assert announced["task_result"].status == TaskResultStatus.READY
    assert announced["task_result"].kwargs == fast.args_kwargs["kwargs"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_task_the_fast_path_wrote(
    monkeypatch, smtp_inbox, double_opt_in_newsletter
):
    task_id, _ = subscribe_and_capture_the_confirmation_task(
        monkeypatch, double_opt_in_newsletter, "ann@example.com"
    )

    run_worker_until_idle()

    assert DBTaskResult.objects.get(pk=task_id).status == TaskResultStatus.SUCCESSFUL
    [confirmation] = smtp_inbox.wait_for(1)
    assert confirmation["To"] == "ann@example.com"


@pytest.mark.django_db
def test_an_unsaved_related_object_is_refused_as_save_refuses_it():
    unsaved = Newsletter(slug="not-saved", name="Not saved")
    activity = Activity(profile=make_profile(email="ann@example.com"), event="subscribed")
    activity.newsletter = unsaved
    with pytest.raises(ValueError, match="unsaved related object"):
        row_insert(activity)
    assert Activity.objects.count() == 0


def field_values(instance):
    fields = type(instance)._meta.fields
    return {field.attname: getattr(instance, field.attname) for field in fields}


@pytest.mark.django_db
def test_row_fetch_builds_the_instance_the_orm_builds():
    newsletter = make_newsletter(slug="fetched", name="Fetched", opt_in="single")
    activity = Activity.objects.create(
        profile=make_profile(email="read@example.com"),
        event="subscribed",
        newsletter=newsletter,
        detail={"source": "form", "nested": [1, "two", None]},
    )
    # Booleans, times and JSON come back converted on every database, as the ORM converts them.
    for model, pk in [(Newsletter, newsletter.pk), (Activity, activity.pk)]:
        fetched = row_fetch(model, where='"id" = %s', params=[pk])
        expected = model.objects.get(pk=pk)
        assert type(fetched) is model
        assert field_values(fetched) == field_values(expected)
        assert not fetched._state.adding and fetched._state.db == "default"
    fetched_activity = row_fetch(Activity, where='"id" = %s', params=[activity.pk])
    assert fetched_activity.detail["nested"] == [1, "two", None]
    assert isinstance(fetched_activity.created_at, datetime)
    assert row_fetch(Newsletter, where='"slug" = %s', params=["fetched"]).is_public is True


@pytest.mark.django_db
def test_row_fetch_finds_nothing_for_a_missing_or_hostile_value():
    make_newsletter(slug="there")
    for slug in ["missing", "there' OR '1'='1", "there'; DROP TABLE newsletters_newsletter; --"]:
        assert row_fetch(Newsletter, where='"slug" = %s', params=[slug]) is None
    assert row_fetch(Newsletter, where='"slug" = %s', params=["there"]).slug == "there"
