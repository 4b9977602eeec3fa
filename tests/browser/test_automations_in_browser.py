"""Automations' staff pages in Chromium: writing one step by step, its preview, its
funnel, a person's automations.

At a desktop and a phone width: screenshots under var/screenshots/staff-automation*.png,
axe-core (no serious or critical violation), no sideways scrolling.
"""

import pytest

from signalpost.automations.models import Automation
from signalpost.automations.services import automation_activate, automation_create
from signalpost.newsletters.services import subscribe, unsubscribe
from tests.browser.test_staff_pages_in_browser import (  # noqa: F401
    CLEAN,
    check,
    shown_clean_at_each_width,
    staff,
)
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


def test_an_automation_is_written_row_by_row_refused_kept_and_previewed(
    live_server,
    staff,  # noqa: F811
):
    make_newsletter(slug="weekly", name="The Weekly")
    assert (
        check(staff, live_server.url, "/admin/automations/automation/add/", "automation-add")
        == CLEAN
    )

    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.fill("#id_name", "Onboarding <b>bold</b>")
    staff.select_option("#id_newsletter", label="The Weekly")
    staff.select_option("#id_trigger", "subscribed")
    step = "#step-row-0"
    assert not staff.is_visible(f"{step} [name=steps-0-subject]"), "no kind: no fields"
    staff.select_option("[name=steps-0-kind]", "email")
    assert staff.is_visible("[name=steps-0-subject]")
    assert not staff.is_visible("[name=steps-0-tag]"), "only the chosen kind's fields"
    staff.fill("[name=steps-0-subject]", "Day one")
    staff.fill("[name=steps-0-body_markdown]", "Hello **there**.")
    staff.select_option("[name=steps-1-kind]", "email")
    staff.fill("[name=steps-1-subject]", "Day two")
    staff.fill("[name=steps-1-body_markdown]", "Again.")
    staff.click("input[type=submit][value=Save]")

    # Two emails with no wait between them: refused on the second row, nothing lost.
    assert "a wait must come between" in staff.inner_text("#step-row-1")
    assert staff.input_value("[name=steps-1-body_markdown]") == "Again."
    assert staff.input_value("#id_name") == "Onboarding <b>bold</b>"
    shown_clean_at_each_width(staff, "automation-refused")

    staff.set_viewport_size({"width": 1280, "height": 900})
    staff.select_option("[name=steps-2-kind]", "wait")
    staff.fill("[name=steps-2-wait_days]", "1")
    staff.fill("[name=steps-2-ORDER]", "1")
    staff.fill("[name=steps-1-ORDER]", "2")
    staff.click("input[type=submit][value=Save]")
    assert "saved" in staff.inner_text(".messagelist")
    automation = Automation.objects.get(name="Onboarding <b>bold</b>")
    assert [step.kind for step in automation.steps.all()] == ["email", "wait", "email"]

    path = f"/admin/automations/automation/{automation.pk}/change/"
    assert check(staff, live_server.url, path, "automation-edit") == CLEAN
    staff.click("text=Preview the saved email")
    frame = staff.frame_locator("iframe.automation-preview-frame")
    assert frame.locator("strong", has_text="there").count() == 1
    preview = f"/admin/automations/automation/{automation.pk}/steps/0/preview/"
    assert check(staff, live_server.url, preview, "automation-preview") == CLEAN
    test = f"/admin/automations/automation/{automation.pk}/steps/0/test/"
    assert check(staff, live_server.url, test, "automation-test") == CLEAN
