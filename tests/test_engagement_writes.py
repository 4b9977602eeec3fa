"""The contract of ``signalpost.engagement.writes``: the redirect's insert, as Django writes it."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from signalpost.engagement.models import Hit, Kind, Machine
from signalpost.engagement.writes import hit_insert
from tests.row_helpers import row

HITS = [
    {"kind": Kind.CLICK, "link_index": 3, "agent": Machine.HUMAN},
    {"kind": Kind.CLICK, "link_index": 0, "agent": Machine.HEAD},
    {"kind": Kind.OPEN, "link_index": None, "agent": Machine.PROXY},
]


def _written(**fields):
    hit_insert(**fields)
    return Hit.objects.order_by("-id").first()


@pytest.mark.parametrize("hit", HITS, ids=["click", "head", "open"])
@pytest.mark.django_db(transaction=True)
def test_a_hit_on_its_own_equals_the_row_create_writes(hit):
    fields = {"issue_id": 2**40, "delivery_id": 7, "at": timezone.now(), **hit}
    by_create = Hit.objects.create(**fields)
    assert row(Hit, _written(**fields).pk, leave_out=("id",)) == row(
        Hit, by_create.pk, leave_out=("id",)
    )


@pytest.mark.django_db
def test_a_hit_inside_a_transaction_equals_the_row_create_writes_and_rolls_back_with_it():
    fields = {"issue_id": 1, "delivery_id": 2, "at": timezone.now(), **HITS[0]}
    by_create = Hit.objects.create(**fields)
    with transaction.atomic():
        inserted = _written(**fields)
        assert row(Hit, inserted.pk, leave_out=("id",)) == row(Hit, by_create.pk, leave_out=("id",))
        transaction.set_rollback(True)
    assert not Hit.objects.filter(pk=inserted.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_hit_on_its_own_is_one_statement_and_leaves_the_connection_as_it_was():
    fields = {"issue_id": 1, "delivery_id": 2, "at": timezone.now(), **HITS[0]}
    with CaptureQueriesContext(connection) as queries:
        hit_insert(**fields)
    assert len(queries) == 1
    assert Hit.objects.count() == 1, "committed on its own"
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in queries[0]["sql"]
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on", "the next transaction waits for the disk again"
