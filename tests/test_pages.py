"""The public pages: /, /subscribe/ and /unsubscribe/."""

import pytest

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from tests.durable_helpers import run_form_requests
from tests.factories import make_newsletter, make_topic

pytestmark = pytest.mark.django_db


def post_subscribe(client, **data):
    return client.post("/subscribe/", data)


def test_home_lists_public_newsletters_by_topic(client):
    python = make_topic(name="Python", slug="python")
    make_newsletter(name="Python Weekly", slug="python-weekly", topics=[python])
    make_newsletter(name="Loose Notes", slug="loose-notes")
    make_newsletter(name="Staff Only", slug="staff-only", is_public=False)

    page = client.get("/").content.decode()

    assert page.index("Python") < page.index("Python Weekly")
    assert "Loose Notes" in page
    assert "Staff Only" not in page
    assert 'value="python-weekly"' in page


def test_subscribe_form_is_prefilled_from_the_query_string(client, newsletter):
    page = client.get("/subscribe/?user_email=jane@example.com&newsletter=weekly").content.decode()
    assert 'value="jane@example.com"' in page
    assert '<option value="weekly" selected>' in page


def test_get_never_subscribes(client, newsletter):
    client.get("/subscribe/?user_email=jane@example.com&newsletter=weekly")
    client.get("/unsubscribe/?user_email=jane@example.com&newsletter=weekly")
    assert Subscription.objects.count() == 0
    assert Profile.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # the worker runs the form's work
def test_posting_the_form_subscribes(client, newsletter):
    response = post_subscribe(client, user_email="jane@example.com", newsletter="weekly")

    assert response.status_code == 200
    assert "Subscribed <strong>jane@example.com</strong>" in response.content.decode()
    run_form_requests()
    subscription = Subscription.objects.get()
    assert subscription.status == "active"
    assert subscription.source == "form"
    assert subscription.consent_ip == "127.0.0.1"
    assert list(subscription.profile.subscriptions.all()) == [newsletter]


@pytest.mark.django_db(transaction=True)  # the worker runs the form's work
def test_double_opt_in_asks_to_check_the_inbox(client, double_opt_in_newsletter):
    response = post_subscribe(client, user_email="jane@example.com", newsletter="careful")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    run_form_requests()
    assert Subscription.objects.get().status == "pending"


def test_missing_email_is_a_400_naming_user_email(client, newsletter):
    response = post_subscribe(client, newsletter="weekly")
    assert response.status_code == 400
    assert "user_email is missing" in response.content.decode()
    assert Subscription.objects.count() == 0


def test_invalid_email_is_a_400_saying_so(client, newsletter):
    response = post_subscribe(client, user_email="not-an-address", newsletter="weekly")
    assert response.status_code == 400
    assert "not a valid email address" in response.content.decode()
    assert Profile.objects.count() == 0


@pytest.mark.parametrize(
    "email",
    [
        "a" * 250 + "@example.com",
        "jane@example.com\r\nBcc: victim@example.com",
        "jane\x00@example.com",
        "<script>alert(1)</script>@example.com",
    ],
    ids=["oversized", "header-injection", "nul-byte", "script"],
)
def test_hostile_email_is_a_400_and_writes_nothing(client, newsletter, email):
    response = post_subscribe(client, user_email=email, newsletter="weekly")
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert Profile.objects.count() == 0


def test_missing_or_unknown_newsletter_is_a_400_naming_it(client, newsletter):
    missing = post_subscribe(client, user_email="jane@example.com")
    unknown = post_subscribe(client, user_email="jane@example.com", newsletter="nope")
    assert missing.status_code == unknown.status_code == 400
    assert "newsletter is missing" in missing.content.decode()
    assert "no such newsletter" in unknown.content.decode()
    assert Subscription.objects.count() == 0


def test_private_newsletters_cannot_be_joined_through_the_form(client):
    make_newsletter(slug="staff-only", is_public=False)
    response = post_subscribe(client, user_email="jane@example.com", newsletter="staff-only")
    assert response.status_code == 400
    assert Subscription.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # the worker runs the form's work
def test_the_unsubscribe_form_leaves_a_private_newsletter_too(client):
    staff_only = make_newsletter(slug="staff-only", is_public=False, opt_in="single")
    subscribe(email="jane@example.com", newsletter=staff_only, source="admin")
    response = client.post(
        "/unsubscribe/", {"user_email": "jane@example.com", "newsletter": "staff-only"}
    )
    assert response.status_code == 200
    run_form_requests()
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED


@pytest.mark.parametrize("slug", ["week\x00ly", "x" * 10_000, "weekly' OR '1'='1", "WEEKLY"])
def test_a_hostile_or_unknown_newsletter_slug_is_a_400(client, newsletter, slug):
    response = post_subscribe(client, user_email="jane@example.com", newsletter=slug)
    assert response.status_code == 400
    assert Subscription.objects.count() == 0


def test_an_oversized_request_body_is_refused(client, newsletter):
    response = post_subscribe(
        client, user_email="jane@example.com", newsletter="weekly", name="x" * 100_000
    )
    assert response.status_code == 413
    assert Subscription.objects.count() == 0


def test_a_name_longer_than_allowed_is_a_400(client, newsletter):
    response = post_subscribe(
        client, user_email="jane@example.com", newsletter="weekly", name="x" * 201
    )
    assert response.status_code == 400
    assert "name" in response.content.decode()


def test_other_methods_are_refused(client, newsletter):
    assert client.put("/subscribe/").status_code == 405
    assert client.delete("/unsubscribe/").status_code == 405
    assert client.post("/").status_code == 405


def test_forms_need_a_csrf_token(newsletter):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(
        "/subscribe/", {"user_email": "jane@example.com", "newsletter": "weekly"}
    )
    assert response.status_code == 403
    assert Subscription.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # the worker runs the form's work
def test_unsubscribing_through_the_form(client, newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source="form")
    response = client.post(
        "/unsubscribe/", {"user_email": "jane@example.com", "newsletter": "weekly"}
    )
    assert response.status_code == 200
    run_form_requests()
    assert Subscription.objects.get().status == "unsubscribed"
    assert Activity.objects.filter(event="unsubscribed").count() == 1


@pytest.mark.django_db(transaction=True)  # the worker runs the form's work
def test_unsubscribe_answers_the_same_whether_or_not_subscribed(client, newsletter):
    subscribe(email="jane@example.com", newsletter=newsletter, source="form")
    subscribed = client.post(
        "/unsubscribe/", {"user_email": "jane@example.com", "newsletter": "weekly"}
    )
    stranger = client.post(
        "/unsubscribe/", {"user_email": "sam@example.com", "newsletter": "weekly"}
    )
    assert subscribed.status_code == stranger.status_code == 200
    assert subscribed.content.decode().replace("jane", "sam") == stranger.content.decode()
    run_form_requests()
    assert not Profile.objects.filter(email="sam@example.com").exists()


def test_unsubscribe_without_email_is_a_400_naming_user_email(client, newsletter):
    response = client.post("/unsubscribe/", {"newsletter": "weekly"})
    assert response.status_code == 400
    assert "user_email is missing" in response.content.decode()
