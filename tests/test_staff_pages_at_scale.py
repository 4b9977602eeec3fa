"""Staff pages stay fast on lists of millions: no exact count of a whole table on each
load, searches by part of an address served by an index, dashboard counts reused."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from signalpost.accounts.models import Profile
from signalpost.newsletters.services import subscribe
from signalpost.postgresql.estimates import EstimatedCountPaginator, count_estimated
from signalpost.publishing import selectors as publishing_selectors
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create
from tests.factories import make_newsletter, make_user
from tests.sending import issue_send_prepared

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="estimates and trigram indexes: PostgreSQL"
)


@pytest.fixture
def staff(client):
    client.force_login(make_user(username="boss", is_staff=True, is_superuser=True))
    return client


def profiles_insert(count):
    """``count`` profiles in one statement, then fresh planner statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_profile (email, name, attributes, soft_bounce_count, "
            "created_at, updated_at) SELECT 'many' || g || '@example.com', '', '{}', 0, "
            "now(), now() FROM generate_series(1, %s) g",
            [count],
        )
        cursor.execute("ANALYZE accounts_profile")


def counts_of(queries, table):
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and table in q["sql"]]


def test_a_short_list_is_counted_exactly():
    for number in range(3):
        Profile.objects.create(email=f"p{number}@example.com")
    assert EstimatedCountPaginator(Profile.objects.order_by("pk"), 2).count == 3
    assert count_estimated(Profile.objects.all()) == 3


@postgres_only
def test_a_long_list_is_estimated_by_the_planner_not_counted():
    profiles_insert(30_000)
    with CaptureQueriesContext(connection) as queries:
        estimate = EstimatedCountPaginator(Profile.objects.order_by("pk"), 100).count
    assert 25_000 <= estimate <= 35_000
    assert not counts_of(queries, "accounts_profile")


@postgres_only
def test_the_profiles_list_of_a_large_table_runs_no_count_of_it(staff):
    profiles_insert(30_000)
    with CaptureQueriesContext(connection) as queries:
        page = staff.get("/admin/accounts/profile/")
    assert page.status_code == 200
    assert page.content.decode().count('name="_selected_action"') == 100, "a full first page"
    assert not counts_of(queries, "accounts_profile"), "no exact COUNT over the table"


def test_searching_profiles_by_part_of_an_address_finds_them(staff):
    Profile.objects.create(email="jane.doe@example.com")
    Profile.objects.create(email="someone@else.example")
    page = staff.get("/admin/accounts/profile/", {"q": "E.DO"}).content.decode()
    assert "jane.doe@example.com" in page and "someone@else.example" not in page
    page = staff.get("/admin/newsletters/subscription/", {"q": "e.do"})
    assert page.status_code == 200


@postgres_only
def test_the_search_by_address_is_served_by_a_trigram_index():
    query = Profile.objects.filter(email__icontains="doe@exa")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is small here
        assert "accounts_profile_email_upper_trgm" in query.explain()


def test_the_subscriptions_list_shows_the_newest_first(staff):
    letter = make_newsletter()
    for number in range(3):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    page = staff.get("/admin/newsletters/subscription/").content.decode()
    assert page.index("reader2@example.com") < page.index("reader0@example.com")


def test_the_newsletters_list_shows_each_ones_active_subscribers(staff):
    letter = make_newsletter(name="Counted")
    for number in range(3):
        subscribe(email=f"reader{number}@example.com", newsletter=letter, source="admin")
    page = staff.get("/admin/newsletters/newsletter/").content.decode()
    assert '<td class="field-active_subscribers">3</td>' in page


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_counts_a_finished_sends_deliveries_once_not_on_every_load(
    staff, monkeypatch
):
    # Charts are cached only past EXACT_BELOW subscriptions (below, they stay current).
    monkeypatch.setattr(publishing_selectors, "_subscriptions_many", lambda: True)
    letter = make_newsletter()
    subscribe(email="reader@example.com", newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="Done", body_markdown="x")
    issue_send_prepared(issue=issue)
    Delivery.objects.update(status="sent")
    issue.refresh_from_db()
    issue.status, issue.sent_at = "sent", issue.sending_started_at
    issue.save()

    first = staff.get("/admin/")
    with CaptureQueriesContext(connection) as again:
        second = staff.get("/admin/")

    assert first.status_code == second.status_code == 200
    assert "Done" in second.content.decode()
    assert not [q for q in again if "publishing_delivery" in q["sql"]]
    assert not [q for q in again if "newsletters_subscription" in q["sql"]], "growth reused"
