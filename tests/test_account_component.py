"""A signed-in user of the site manages their newsletters from its account page.

The "Your newsletters" component (``{% your_newsletters %}``) and its toggles: one click with
an address the site verified (``SIGNALPOST_VERIFIED_EMAIL``), the usual confirmation
otherwise, the tutorial's signals and ``user.profile.subscriptions``, and bad input.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.template import Context, RequestContext, Template
from django.test import Client, RequestFactory

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from signalpost.signals import subscription_requested, user_subscribed, user_unsubscribed
from tests.factories import make_newsletter, make_user
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db

TOGGLE = "/account/newsletters/"


@pytest.fixture
def careful():
    return make_newsletter(slug="careful", name="The Careful", opt_in="double")


@pytest.fixture
def verified_hook(settings):
    settings.SIGNALPOST_VERIFIED_EMAIL = "tests.hosts.hooks.every_address_verified"


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_verified_user_subscribes_in_one_click_without_a_confirmation(careful, verified_hook):
    jane = make_user(email="Jane@Example.com")
    with (
        SignalRecorder(user_subscribed) as subscribed,
        SignalRecorder(subscription_requested) as requested,
    ):
        response = signed_in(jane).post(
            TOGGLE, {"newsletter": "careful", "action": "subscribe", "next": "/account/"}
        )
    assert response.status_code == 303
    assert response["Location"] == "/account/"
    subscription = Subscription.objects.get(newsletter=careful)
    assert subscription.status == Subscription.Status.ACTIVE
    assert [call["user_email"] for call in subscribed.calls] == ["jane@example.com"]
    assert requested.calls == []
    jane.refresh_from_db()
    assert list(jane.profile.subscriptions.all()) == [careful]


def test_without_a_verified_address_the_user_confirms_by_email_as_anyone(careful):
    jane = make_user(email="jane@example.com")
    with SignalRecorder(subscription_requested) as requested:
        signed_in(jane).post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    assert Subscription.objects.get(newsletter=careful).status == Subscription.Status.PENDING
    assert [call["user_email"] for call in requested.calls] == ["jane@example.com"]
    assert list(jane.profile.subscriptions.all()) == []


def test_an_unverified_user_is_not_trusted_by_the_hook(settings, careful):
    settings.SIGNALPOST_VERIFIED_EMAIL = "tests.hosts.hooks.verified_email"
    jane = make_user(email="jane@example.com")
    jane.verified = False
    from signalpost.newsletters.services import user_subscribe

    assert user_subscribe(user=jane, newsletter=careful).status == Subscription.Status.PENDING
    jane.verified = True
    assert user_subscribe(user=jane, newsletter=careful).status == Subscription.Status.ACTIVE


def test_unsubscribing_from_the_account_page_fires_the_tutorials_signal(careful, verified_hook):
    jane = make_user(email="jane@example.com")
    client = signed_in(jane)
    client.post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    with SignalRecorder(user_unsubscribed) as unsubscribed:
        response = client.post(TOGGLE, {"newsletter": "careful", "action": "unsubscribe"})
    assert response.status_code == 303
    assert [call["user_email"] for call in unsubscribed.calls] == ["jane@example.com"]
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED
    assert list(Profile.objects.get(user=jane).subscriptions.all()) == []


def test_the_component_lists_newsletters_with_working_toggles(careful, verified_hook):
    private = make_newsletter(slug="staff-only", name="Staff only", is_public=False)
    make_newsletter(slug="weekly", name="The Weekly")
    jane = make_user(email="jane@example.com")
    subscribe(email="jane@example.com", newsletter=private, source="admin")
    request = RequestFactory().get("/account/?tab=mail")
    request.user = jane
    html = Template("{% load signalpost_account %}{% your_newsletters %}").render(
        RequestContext(request)
    )
    # Public ones to join, and the private one they are on, to leave.
    assert html.index("Staff only") < html.index("The Careful") < html.index("The Weekly")
    assert html.count('name="csrfmiddlewaretoken"') == 3
    assert 'action="/account/newsletters/"' in html
    assert 'value="/account/?tab=mail"' in html
    assert html.count('value="subscribe"') == 2 and html.count('value="unsubscribe"') == 1


def test_the_component_asks_a_visitor_to_sign_in(careful):
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/account/")
    request.user = AnonymousUser()
    html = Template("{% load signalpost_account %}{% your_newsletters %}").render(
        Context({"request": request})
    )
    assert "Sign in to choose your newsletters." in html
    assert "<form" not in html


# ---------------------------------------------------------------------- bad input


def test_a_visitor_who_is_not_signed_in_changes_nothing(careful):
    response = Client().post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    assert response.status_code == 403
    assert b"Sign in" in response.content
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": "subscribe"}, b"newsletter"),
        ({"newsletter": "careful"}, b"action"),
        ({"newsletter": "careful", "action": "delete-everything"}, b"action"),
        ({"newsletter": "no-such-letter", "action": "subscribe"}, b"newsletter"),
        ({"newsletter": "x" * 5000, "action": "subscribe"}, b"newsletter"),
        ({"newsletter": "<script>alert(1)</script>", "action": "subscribe"}, b"newsletter"),
        ({"newsletter": "staff-only", "action": "subscribe"}, b"newsletter"),
    ],
)
def test_a_malformed_toggle_gets_a_400_naming_the_field(careful, verified_hook, data, field):
    make_newsletter(slug="staff-only", name="Staff only", is_public=False)
    response = signed_in(make_user()).post(TOGGLE, data)
    assert response.status_code == 400
    assert b"<code>" + field + b"</code>" in response.content
    assert b"<script>alert" not in response.content
    assert not Subscription.objects.exists()


def test_a_toggle_acts_on_the_signed_in_users_own_subscription_only(careful, verified_hook):
    jane = make_user(email="jane@example.com")
    signed_in(jane).post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    janes = Subscription.objects.get()
    # Bob forges Jane's subscription id and address into the form: they are not read.
    response = signed_in(make_user(email="bob@example.com")).post(
        TOGGLE,
        {
            "newsletter": "careful",
            "action": "unsubscribe",
            "subscription": janes.pk,
            "user_email": "jane@example.com",
        },
    )
    assert response.status_code == 303
    janes.refresh_from_db()
    assert janes.status == Subscription.Status.ACTIVE


def test_a_toggle_without_the_csrf_token_is_refused(careful, verified_hook):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user())
    response = client.post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    assert response.status_code == 403
    assert not Subscription.objects.exists()


def test_a_toggle_is_a_post_only(careful, verified_hook):
    response = signed_in(make_user()).get(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    assert response.status_code == 405
    assert not Subscription.objects.exists()


def test_a_user_without_an_address_is_told_so(careful):
    user = get_user_model().objects.create_user(username="noaddress", email="")
    response = signed_in(user).post(TOGGLE, {"newsletter": "careful", "action": "subscribe"})
    assert response.status_code == 400
    assert b"no email address" in response.content
    assert not Subscription.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize(
    "target", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)"]
)
def test_a_toggle_never_sends_the_user_to_another_site(careful, verified_hook, target):
    response = signed_in(make_user()).post(
        TOGGLE, {"newsletter": "careful", "action": "subscribe", "next": target}
    )
    assert response.status_code == 303
    assert response["Location"] == "/"
