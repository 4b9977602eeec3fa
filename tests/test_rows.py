"""The contract of ``signalpost.rows``, the mechanism every app's ``writes.py`` builds on:
``row_insert`` writes the row ``save()`` would write and sends the model signals ``save()``
sends; ``row_fetch`` builds the instance the ORM builds. Each app's own rows are compared
with Django's in ``tests/test_<app>_writes.py``."""

from datetime import datetime

import pytest
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext
from psycopg import pq

from signalpost.activity.models import Activity
from signalpost.conf import conf
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.selectors import newsletter_by_pk
from signalpost.rows import row_fetch, row_insert, rows_deferred, rows_insert
from tests.factories import make_newsletter, make_profile
from tests.row_helpers import Heard


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


@pytest.mark.django_db
def test_a_newsletter_read_by_its_key_is_the_one_the_orm_reads():
    newsletter = make_newsletter(slug="keyed", name="Keyed", opt_in="double")
    fetched = newsletter_by_pk(newsletter.pk)
    assert field_values(fetched) == field_values(
        Newsletter.objects.filter(pk=newsletter.pk).first()
    )
    assert newsletter_by_pk(newsletter.pk + 1000) is None, "deleted since the form was sent"


@pytest.mark.django_db
def test_rows_insert_writes_the_rows_save_writes_with_their_signals_each():
    profile = make_profile()
    by_save = [Activity(profile=profile, event="subscribed", detail={"n": n}) for n in range(3)]
    inserted = [Activity(profile=profile, event="subscribed", detail={"n": n}) for n in range(3)]
    with Heard(pre_save, Activity) as pre, Heard(post_save, Activity) as post:
        for activity in by_save:
            activity.save()
        assert rows_insert(inserted) == inserted
    assert [call["instance"] for call in pre.calls[3:]] == inserted
    assert [call["instance"] for call in post.calls[3:]] == inserted
    assert all(activity.pk is not None and not activity._state.adding for activity in inserted)
    stored = {a.pk: a for a in Activity.objects.all()}
    for saved, written in zip(by_save, inserted, strict=True):
        assert {**field_values(stored[written.pk]), "id": 0, "created_at": 0} == {
            **field_values(stored[saved.pk]),
            "id": 0,
            "created_at": 0,
        }


@pytest.mark.django_db
def test_rows_insert_with_on_conflict_returns_only_the_rows_it_wrote():
    from signalpost.accounts.models import Profile
    from signalpost.accounts.writes import profiles_insert_new

    make_profile(email="known@example.com", name="Known")
    fresh = [
        Profile(email=e, name="New")
        for e in ("a@example.com", "known@example.com", "b@example.com")
    ]
    with Heard(post_save, Profile) as post:
        written = profiles_insert_new(profiles=fresh)
    assert [p.email for p in written] == ["a@example.com", "b@example.com"]
    assert [call["instance"] for call in post.calls] == written
    assert Profile.objects.get(email="known@example.com").name == "Known"
    assert {p.email: p.pk for p in written} == dict(
        Profile.objects.filter(name="New").values_list("email", "pk")
    )


@pytest.mark.django_db
def test_deferred_rows_are_written_at_the_end_of_the_block_and_not_after_an_error():
    profile = make_profile()
    seen_inside = []
    with Heard(post_save, Activity) as post, rows_deferred():
        for _ in range(3):
            row_insert(Activity(profile=profile, event="subscribed"), deferrable=True)
        seen_inside.append((Activity.objects.count(), len(post.calls)))
    assert seen_inside == [(0, 0)], "held back inside the block"
    assert Activity.objects.count() == 3 and len(post.calls) == 3
    with pytest.raises(RuntimeError), rows_deferred():
        row_insert(Activity(profile=profile, event="subscribed"), deferrable=True)
        raise RuntimeError("the batch failed")
    assert Activity.objects.count() == 3, "nothing held back is written after an error"
    row_insert(Activity(profile=profile, event="subscribed"), deferrable=True)
    assert Activity.objects.count() == 4, "outside the block: at once"


@pytest.mark.django_db
def test_profiles_insert_new_without_listeners_skips_known_addresses_in_one_statement():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from signalpost.accounts.models import Profile
    from signalpost.accounts.writes import profiles_insert_new

    make_profile(email="known@example.com", name="Known")
    fresh = [Profile(email=e, name="New") for e in ("a@example.com", "known@example.com")]
    with CaptureQueriesContext(connection) as queries:
        written = profiles_insert_new(profiles=fresh)
    assert len(queries.captured_queries) == 1
    assert written == [fresh[0]] and fresh[0].pk is not None
    assert Profile.objects.get(email="known@example.com").name == "Known"


# On PostgreSQL the single-row statements are prepared once per connection -----------------

needs_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="prepared statements: PostgreSQL"
)
# Behind a transaction pooler (CI's PgBouncer pass) nothing is prepared, by design.
prepares = pytest.mark.skipif(
    connection.vendor != "postgresql" or conf.DATABASE_TRANSACTION_POOLING,
    reason="prepared statements: PostgreSQL reached directly",
)


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return {statement: runs for statement, runs in cursor.fetchall()}


def runs_of(statements, start):
    [runs] = [runs for statement, runs in statements.items() if statement.startswith(start)]
    return runs


@prepares
@pytest.mark.django_db
def test_a_row_read_or_written_again_is_not_parsed_again_and_still_shows_in_the_query_log():
    make_newsletter(slug="weekly")
    profile = make_profile()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).slug == "weekly"
            row_insert(Activity(profile=profile, event="subscribed", detail={}))

    statements = prepared_statements()
    assert runs_of(statements, 'SELECT "id", "slug"') == 3
    assert runs_of(statements, 'INSERT INTO "activity_activity"') == 3
    assert len(queries.captured_queries) == 6, "the query log and execute wrappers see them"
    assert Activity.objects.filter(profile=profile).count() == 3


@needs_postgresql
@pytest.mark.django_db
def test_behind_a_transaction_pooler_nothing_is_prepared(settings):
    settings.SIGNALPOST_DATABASE_TRANSACTION_POOLING = True
    make_newsletter(slug="weekly")
    profile = make_profile()

    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).slug == "weekly"
    row_insert(Activity(profile=profile, event="subscribed", detail={}))

    assert prepared_statements() == {}


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_that_fails_raises_django_s_error_and_rolls_back():
    newsletter = make_newsletter(slug="weekly")
    profile = make_profile()
    row_insert(Subscription(profile=profile, newsletter=newsletter))

    with pytest.raises(IntegrityError), transaction.atomic():
        row_insert(Activity(profile=profile, event="subscribed", detail={}))
        row_insert(Subscription(profile=profile, newsletter=newsletter))  # the pair is unique

    assert not Activity.objects.exists(), "the transaction was marked for rollback"
    # The connection goes on (the rollback deallocated its statements: prepared again).
    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).pk == newsletter.pk
    assert Subscription.objects.count() == 1


def behind_psycopg(sql):
    """Run ``sql`` on this connection without psycopg seeing it (as a pooler or another
    tool would change the session): its cache of prepared statements goes stale."""
    result = connection.connection.pgconn.exec_(sql.encode())
    assert result.status == pq.ExecStatus.COMMAND_OK, result.error_message


@prepares
@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_psycopg_is_prepared_again():
    newsletter = make_newsletter(slug="weekly")
    for _ in range(2):
        assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).pk == newsletter.pk
    behind_psycopg("DEALLOCATE ALL")

    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).pk == newsletter.pk
    assert runs_of(prepared_statements(), 'SELECT "id", "slug"') == 1


@prepares
@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_columns_a_migration_changed_is_planned_again():
    newsletter = make_newsletter(slug="weekly", name="The Weekly")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'newsletters_newsletter'::regclass AND attname = 'name'"
        )
        [original] = cursor.fetchone()
    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).name == "The Weekly"
    # A migration run elsewhere while this connection lives (here: on it, unseen).
    behind_psycopg('ALTER TABLE newsletters_newsletter ALTER COLUMN "name" TYPE text')
    try:
        fetched = row_fetch(Newsletter, where='"slug" = %s', params=["weekly"])
        assert (fetched.pk, fetched.name) == (newsletter.pk, "The Weekly")
    finally:
        behind_psycopg(f'ALTER TABLE newsletters_newsletter ALTER COLUMN "name" TYPE {original}')


@prepares
@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_a_lost_statement_fails_once_and_the_rollback_heals_it():
    newsletter = make_newsletter(slug="weekly")
    row_fetch(Newsletter, where='"slug" = %s', params=["weekly"])
    behind_psycopg("DEALLOCATE ALL")

    with pytest.raises(DatabaseError), transaction.atomic():
        row_fetch(Newsletter, where='"slug" = %s', params=["weekly"])

    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).pk == newsletter.pk


@needs_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize(
    "database",
    [{"DISABLE_SERVER_SIDE_CURSORS": True}, {"OPTIONS": {"prepare_threshold": None}}],
    ids=["no server-side cursors", "prepare_threshold None"],
)
def test_a_host_project_s_pooler_settings_turn_preparing_off(database, monkeypatch):
    for key, value in database.items():
        monkeypatch.setitem(connection.settings_dict, key, value)
    make_newsletter(slug="weekly")

    assert row_fetch(Newsletter, where='"slug" = %s', params=["weekly"]).slug == "weekly"
    assert prepared_statements() == {}


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_row_committed_without_flush_refuses_a_value_too_long_as_a_plain_insert_does():
    from django_tasks_db.models import DBTaskResult

    def task_row(queue_name):
        return DBTaskResult(
            args_kwargs={"args": [], "kwargs": {}},
            priority=0,
            task_path="tests.tasks.nothing",
            queue_name=queue_name,
            backend_name="default",
        )

    for commit_without_flush in (False, True):
        with pytest.raises(DataError):  # not cut to varchar(32) by a cast
            row_insert(task_row("q" * 40), commit_without_flush=commit_without_flush)
    assert row_insert(task_row("q" * 32), commit_without_flush=True)
    assert DBTaskResult.objects.get().queue_name == "q" * 32
