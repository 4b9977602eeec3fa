"""The preference center: a signed link, every newsletter, change or leave everything."""

import re
from urllib.parse import urlsplit

import pytest

from signalpost.accounts.models import Profile
from signalpost.newsletters import links
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import text_part

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def letters(db):
    return {
        "weekly": make_newsletter(slug="weekly", name="The Weekly"),
        "daily": make_newsletter(slug="daily", name="The Daily", opt_in="double"),
        "private": make_newsletter(slug="private", name="Staff Notes", is_public=False),
        "other-private": make_newsletter(slug="other-private", name="Secret", is_public=False),
    }


def statuses(email):
    return dict(
        Subscription.objects.filter(profile__email=email).values_list("newsletter__slug", "status")
    )


def test_a_subscriber_requests_the_link_by_email_and_changes_everything(
    client, smtp_inbox, letters
):
    subscribe(email="jane@example.com", newsletter=letters["weekly"], source="form")
    subscribe(email="jane@example.com", newsletter=letters["private"], source="admin")
    run_worker_until_idle()
    smtp_inbox.envelopes.clear()

    response = client.post("/preferences/", {"user_email": "Jane@Example.com"})
    assert response.status_code == 200
    run_worker_until_idle()
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"] == "Your link to manage your subscriptions"
    url = re.search(r"https://news\.example\.com/preferences/\S+/", text_part(message)).group(0)
    path = urlsplit(url).path

    page = client.get(path).content.decode()
    assert "The Weekly" in page and "The Daily" in page and "Staff Notes" in page
    assert "Secret" not in page, "private newsletters they are not on stay hidden"

    saved = client.post(path, {"name": "Jane Doe", "newsletters": ["daily", "private"]})
    assert saved.status_code == 200
    assert "Joined: The Daily" in saved.content.decode()
    assert statuses("jane@example.com") == {
        "weekly": "unsubscribed",
        "daily": "active",
        "private": "active",
    }
    assert Profile.objects.get().name == "Jane Doe"

    left = client.post(path, {"leave_all": "1"})
    assert "You left every newsletter" in left.content.decode()
    assert set(statuses("jane@example.com").values()) == {"unsubscribed"}


def test_asking_for_a_link_for_an_unknown_address_sends_nothing_and_says_the_same(
    client, smtp_inbox, letters
):
    subscribe(email="jane@example.com", newsletter=letters["weekly"], source="admin")
    known = client.post("/preferences/", {"user_email": "jane@example.com"})
    unknown = client.post("/preferences/", {"user_email": "sam@example.com"})
    run_worker_until_idle()

    assert known.content.decode().replace("jane@", "sam@") == unknown.content.decode()
    assert [message["To"] for message in smtp_inbox.wait_for(1)] == ["jane@example.com"]


def test_the_preferences_form_refuses_unknown_newsletters_and_long_names(client, letters):
    subscription = subscribe(email="jane@example.com", newsletter=letters["weekly"], source="form")
    path = links.preferences_path(profile=subscription.profile)

    unknown = client.post(path, {"newsletters": ["weekly", "nope"]})
    assert unknown.status_code == 400
    assert "newsletters" in unknown.content.decode()
    hidden = client.post(path, {"newsletters": ["other-private"]})
    assert hidden.status_code == 400
    long_name = client.post(path, {"name": "x" * 201, "newsletters": ["weekly"]})
    assert long_name.status_code == 400
    assert statuses("jane@example.com") == {"weekly": "active"}


def test_an_invalid_preferences_link_offers_a_fresh_one(client):
    response = client.get("/preferences/not-a-token/")
    assert response.status_code == 400
    assert "Email me a link" in response.content.decode()


def test_a_missing_email_when_asking_for_a_link_is_a_400_naming_it(client):
    response = client.post("/preferences/", {})
    assert response.status_code == 400
    assert "user_email is missing" in response.content.decode()


def test_a_subscriber_downloads_everything_held_about_them(client, letters):
    subscription = subscribe(email="jane@example.com", newsletter=letters["weekly"], source="form")
    path = links.preferences_path(profile=subscription.profile)
    assert "Download everything we hold about you" in client.get(path).content.decode()

    response = client.get(path + "data.json")
    assert response["Content-Disposition"].startswith("attachment")
    data = response.json()
    assert data["profile"]["email"] == "jane@example.com"
    assert data["subscriptions"][0]["newsletter"] == "weekly"
    assert (
        data["subscriptions"][0]["consent"]["at"] is None
        or "T" in data["subscriptions"][0]["consent"]["at"]
    )
    assert client.get("/preferences/forged/data.json").status_code == 400


def test_erase_profile_command_forgets_the_person_and_keeps_anonymous_deliveries(
    smtp_inbox, letters
):
    from io import StringIO

    from django.core.management import call_command

    from signalpost.activity.models import Activity
    from signalpost.publishing.models import Delivery
    from signalpost.publishing.services import issue_create, issue_send
    from signalpost.signals import profile_erased

    subscribe(email="jane@example.com", name="Jane", newsletter=letters["weekly"], source="form")
    issue_send(issue=issue_create(newsletter=letters["weekly"], subject="Hi", body_markdown="x"))
    run_worker_until_idle()
    calls = []
    profile_erased.connect(
        lambda sender, **kw: calls.append(kw), weak=False, dispatch_uid="t.erase"
    )
    try:
        call_command("erase_profile", "jane@example.com", "--yes", stdout=StringIO())
    finally:
        profile_erased.disconnect(dispatch_uid="t.erase")

    assert not Profile.objects.exists()
    assert not Subscription.objects.exists()
    assert not Activity.objects.exists()
    delivery = Delivery.objects.get()
    assert (delivery.profile_id, delivery.email, delivery.status) == (None, "", "sent")
    assert calls[0]["user_email"] == "jane@example.com"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No profile"):
        call_command("erase_profile", "jane@example.com", "--yes")
