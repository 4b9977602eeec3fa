"""Automations' staff pages in Chromium: the automation's funnel, a person's automations.

At a desktop and a phone width: screenshots under var/screenshots/staff-automation*.png,
axe-core (no serious or critical violation), no sideways scrolling.
"""

import pytest

from signalpost.automations.models import Automation
from signalpost.automations.services import automation_activate, automation_create
from signalpost.newsletters.services import subscribe, unsubscribe
from tests.browser.test_staff_pages_in_browser import CLEAN, check, staff  # noqa: F401
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_automations_funnel_and_a_persons_automations_read_at_each_width(
    live_server,
    staff,  # noqa: F811
):
    newsletter = make_newsletter(slug="weekly", name="The Weekly")
    automation = automation_create(
        newsletter=newsletter,
        name="Onboarding",
        trigger="subscribed",
        steps=[
            {"kind": "email", "config": {"subject": "Day one", "body_markdown": "Hello."}},
            {"kind": "wait", "config": {"seconds": 86400}},
            {"kind": "tag_add", "config": {"tag": "onboarded"}},
        ],
    )
    automation_activate(automation=automation)
    ann = subscribe(email="ann@example.com", newsletter=newsletter, source="form").profile
    subscribe(email="bob@example.com", newsletter=newsletter, source="form")
    unsubscribe(email="bob@example.com", newsletter=newsletter, reason="form")

    path = f"/admin/automations/automation/{automation.pk}/change/"
    assert check(staff, live_server.url, path, "automation") == CLEAN
    assert "2 enrolled: 1 in progress, 0 finished, 1 exited." in staff.content()
    assert check(staff, live_server.url, "/admin/automations/automation/", "automations") == CLEAN
    assert Automation.objects.count() == 2  # the welcome email's and this one
    profile = f"/admin/accounts/profile/{ann.pk}/change/"
    assert check(staff, live_server.url, profile, "profile-automations") == CLEAN
    assert "Onboarding" in staff.content()
