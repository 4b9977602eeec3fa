from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from signalpost.newsletters.models import Newsletter, Subscription

pytestmark = pytest.mark.django_db


def test_demo_data_loads_and_can_load_again(settings):
    settings.DEBUG = True
    call_command("load_demo_data", stdout=StringIO())
    counts = (Newsletter.objects.count(), Subscription.objects.count())
    call_command("load_demo_data", stdout=StringIO())

    assert (Newsletter.objects.count(), Subscription.objects.count()) == counts
    assert counts[0] >= 3
    assert Subscription.objects.filter(status="active").count() == counts[1]
    assert get_user_model().objects.get(username="admin").is_superuser


def test_the_demo_login_is_shown_only_while_it_is_still_the_demo_password(settings):
    settings.DEBUG = True
    shown = StringIO()
    call_command("load_demo_data", stdout=shown)
    assert shown.getvalue() == "Staff login: admin / admin (the demo password)\n"

    admin = get_user_model().objects.get(username="admin")
    admin.set_password("a much better secret")
    admin.save()
    changed = StringIO()
    call_command("load_demo_data", stdout=changed)
    assert changed.getvalue() == ""
