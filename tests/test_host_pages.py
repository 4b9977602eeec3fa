"""Signalpost's pages inside a host site: under its prefix, in its base template, leaving
its own URL names and error pages alone (docs/integrate.md)."""

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.test import Client

from signalpost.newsletters.models import Subscription
from tests.durable_helpers import run_form_requests
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db

HOST_TEMPLATES = str(Path(__file__).parent / "hosts" / "templates")


@pytest.fixture
def host(settings):
    settings.ROOT_URLCONF = "tests.hosts.urls"
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [HOST_TEMPLATES]}]
    settings.SIGNALPOST_BASE_TEMPLATE = "host/base.html"
    return Client()


def test_the_pages_and_their_links_live_under_the_hosts_prefix(host):
    make_newsletter(slug="weekly", name="The Weekly")
    page = host.get("/news/").content.decode()
    links = set(re.findall(r'(?:href|action)="([^"]+)"', page))
    assert {"/news/n/weekly/", "/news/subscribe/"} <= links
    assert not [link for link in links if link.startswith("/") and not link.startswith("/news/")]
    # The host's own names are its own.
    assert host.get("/subscribe/").content == b"the host's own subscribe"


@pytest.mark.django_db(transaction=True)
def test_subscribing_under_the_prefix_works_end_to_end(host):
    make_newsletter(slug="weekly", name="The Weekly")
    response = host.post(
        "/news/subscribe/", {"user_email": "ann@example.com", "newsletter": "weekly"}
    )
    assert response.status_code == 200
    run_form_requests()
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE


def test_the_standalone_layout_in_a_host_without_set_language_has_no_switcher(host, settings):
    """A host that keeps Signalpost's own base template but routes no ``set_language``
    gets its pages, without the language switcher (which would have nowhere to post)."""
    settings.SIGNALPOST_BASE_TEMPLATE = "signalpost/base.html"
    response = host.get("/news/subscribe/", headers={"accept-language": "de"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Abonnieren</h1>" in page  # still in the reader's language
    assert 'class="language' not in page and 'name="language"' not in page


@pytest.mark.parametrize("path", ["/news/", "/news/subscribe/", "/news/unsubscribe/"])
def test_every_public_page_renders_inside_the_hosts_base_template(host, path):
    page = host.get(path).content.decode()
    assert '<header class="host">The Host</header>' in page
    main = page[page.index("<main>") : page.index("</main>")]
    assert "<h1>" in main
    assert "<title>" in page and "| Host</title>" in page
    assert "Skip to content" not in page  # nothing of Signalpost's own layout


def test_the_apps_leave_the_sites_error_pages_alone(host):
    for name in ("400.html", "404.html", "500.html"):
        with pytest.raises(TemplateDoesNotExist):
            get_template(name)


def test_a_refused_body_answers_inside_the_hosts_layout(host):
    response = host.post(
        "/news/subscribe/",
        b"user_email=j%E9@example.com",
        content_type="application/x-www-form-urlencoded; charset=latin-1",
    )
    assert response.status_code == 400
    assert b'<header class="host">The Host</header>' in response.content


def test_the_admin_works_in_a_host_without_the_queue_page(host, settings):
    settings.ROOT_URLCONF = "tests.hosts.urls_with_admin"
    staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    host.force_login(staff)
    response = host.get("/staff/")
    assert response.status_code == 200
    assert b"Task queue" not in response.content
