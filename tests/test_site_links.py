"""The site's navigation links, worked out once per URL prefix."""

import re

import pytest
from django.urls import reverse, set_script_prefix

pytestmark = pytest.mark.django_db

NAV_LINKS = re.compile(rb'<nav aria-label="Main">(.*?)</nav>', re.S)


def nav_hrefs(content):
    return re.findall(rb'href="([^"]*)"', NAV_LINKS.search(content).group(1))


def stylesheet_href(content):
    return re.search(rb'<link rel="stylesheet" href="([^"]*)"', content).group(1)


def test_every_page_links_the_navigation_and_stylesheet(client):
    for path in ["/", "/subscribe/", "/unsubscribe/"]:
        content = client.get(path).content
        assert nav_hrefs(content) == [
            reverse(f"signalpost:{name}").encode()
            for name in ("home", "subscribe", "preferences_request")
        ]
        assert stylesheet_href(content).endswith(b"signalpost/site.css")


def served_under(prefix, client, path):
    # What a WSGI server's SCRIPT_NAME makes Django's handler do for each request (the test
    # client does not).
    set_script_prefix(prefix)
    try:
        return client.get(path).content
    finally:
        set_script_prefix("/")


def test_a_site_served_under_a_prefix_links_under_it_and_others_do_not_inherit_it(client):
    prefixed = served_under("/news/", client, "/subscribe/")
    plain = served_under("/", client, "/subscribe/")
    assert nav_hrefs(prefixed) == [b"/news/", b"/news/subscribe/", b"/news/preferences/"]
    assert b'action="/news/subscribe/"' in prefixed
    assert nav_hrefs(plain) == [b"/", b"/subscribe/", b"/preferences/"]
    assert b'action="/subscribe/"' in plain


def test_a_prefix_per_request_is_served_right_and_not_all_remembered(client):
    from signalpost import pages

    for number in range(40):
        content = served_under(f"/p{number}/", client, "/unsubscribe/")
        assert nav_hrefs(content)[1] == f"/p{number}/subscribe/".encode()
    assert len(pages._links_by_prefix) <= pages.LINKS_KEPT_MAX
