"""What a host without email fields relies on, run under its settings (test_host_users.py).

Prints one line per behaviour that held; an assertion that fails stops it non-zero.
"""

import django
from django.core.management import call_command

django.setup()

from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.template import RequestContext, Template  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402

from signalpost.accounts.models import Profile  # noqa: E402
from signalpost.newsletters.models import Newsletter, Subscription  # noqa: E402
from signalpost.newsletters.services import user_subscribe, user_unsubscribe  # noqa: E402
from signalpost.signals import user_subscribed  # noqa: E402
from tests.hosts.noemail.models import Member  # noqa: E402
from tests.recorders import SignalRecorder  # noqa: E402

call_command("migrate", verbosity=0)
news = Newsletter.objects.create(slug="news", name="News", opt_in="double")

member = Member.objects.create_user("ada", "a long password")
assert not Profile.objects.exists()
print("a user without an email field gets no profile of its own")

try:
    user_subscribe(user=member, newsletter=news)
except ValidationError as error:
    assert error.code == "no_address"
    assert not Subscription.objects.exists()
    print("without the hook they are told they have no address")
else:
    raise AssertionError("subscribed without an address")

with (
    override_settings(SIGNALPOST_VERIFIED_EMAIL="tests.hosts.noemail.hooks.address_from_directory"),
    SignalRecorder(user_subscribed) as subscribed,
):
    subscription = user_subscribe(user=member, newsletter=news)
assert subscription.status == Subscription.Status.ACTIVE
assert [call["user_email"] for call in subscribed.calls] == ["ada@members.example"]
member.refresh_from_db()
assert list(member.profile.subscriptions.all()) == [news]
print("with the hook's address they subscribe in one click and user.profile follows")

request = RequestFactory().get("/account/")
request.user = member
html = Template("{% load signalpost_account %}{% your_newsletters %}").render(
    RequestContext(request)
)
assert 'value="unsubscribe"' in html and "News" in html
request.user = AnonymousUser()
html = Template("{% load signalpost_account %}{% your_newsletters %}").render(
    RequestContext(request)
)
assert "Sign in" in html
print("the component lists their newsletter, and asks a visitor to sign in")

user_unsubscribe(user=member, newsletter=news)
assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED
assert list(member.profile.subscriptions.all()) == []
print("they leave from the component's toggle")
