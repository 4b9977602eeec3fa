"""The pages a "Your newsletters" toggle can answer with when it changes nothing, in Chromium
at 1280 and 390 px: a visitor who is not signed in (403), a malformed toggle (400)."""

import pytest
from django.contrib.auth import get_user_model

from signalpost.newsletters.models import Newsletter, Subscription
from tests.browser.test_site_hygiene_in_browser import _axe_required, axe_violations

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long staff password 42"
WIDTHS = (1280, 390)
# A toggle as the component posts it, built in the page (the site itself runs no script).
POST_TOGGLE = """([fields]) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/account/newsletters/";
  const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  for (const [name, value] of [["csrfmiddlewaretoken", token], ...fields]) {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


@pytest.fixture
def weekly():
    return Newsletter.objects.create(slug="weekly", name="The Weekly", opt_in="single")


def toggle_pages(browser, base, screenshot, name, fields, *, sign_in=False):
    """Post a toggle at each width; return (statuses, problems) of the pages it answers."""
    _axe_required()
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    statuses, problems = [], []
    try:
        if sign_in:
            page.goto(f"{base}/admin/login/?next=/")
            page.get_by_label("Username").fill("editor")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(base + "/")
            with page.expect_navigation() as navigation:
                page.evaluate(POST_TOGGLE, [fields])
            statuses.append(navigation.value.status)
            screenshot(page, f"{name}-{width}")
            problems += [f"{name} at {width}px: {found}" for found in axe_violations(page)]
    finally:
        context.close()
    return statuses, problems


def test_a_visitor_not_signed_in_is_asked_to_sign_in(browser, live_server, screenshot, weekly):
    fields = [["newsletter", "weekly"], ["action", "subscribe"]]
    statuses, problems = toggle_pages(browser, live_server.url, screenshot, "signed-out", fields)
    assert statuses == [403, 403]
    assert problems == []
    assert not Subscription.objects.exists()


def test_a_malformed_toggle_names_the_field(browser, live_server, screenshot, weekly):
    get_user_model().objects.create_user("editor", "editor@example.com", PASSWORD, is_staff=True)
    fields = [["newsletter", "no-such-letter"]]
    statuses, problems = toggle_pages(
        browser, live_server.url, screenshot, "malformed", fields, sign_in=True
    )
    assert statuses == [400, 400]
    assert problems == []
    assert not Subscription.objects.exists()
