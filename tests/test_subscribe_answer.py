"""The answer to a subscribe POST, rendered once per shape and filled in per visitor
(``newsletters.answers``): the same page as a full render, never another visitor's."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from signalpost.newsletters import answers, mailmerge
from tests.test_host_pages import HOST_TEMPLATES

pytestmark = pytest.mark.django_db


def rendered_in_full(monkeypatch):
    """Make every answer a full render, as ``render_page`` gives it."""
    monkeypatch.setattr(
        answers.mailmerge, "merged", lambda memo, *, render_direct, **kwargs: render_direct()
    )


def answer(client, email, *, slug, language="en", query=""):
    response = client.post(
        f"/subscribe/{query}",
        {"user_email": email, "newsletter": slug, "name": "", "website": ""},
        headers={"accept-language": language},
    )
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("fixture", ["newsletter", "double_opt_in_newsletter"])
@pytest.mark.parametrize(
    ("email", "query"),
    [
        ("ann@example.com", ""),
        ("o'brien+news&more@example.com", "?from=<a href='x'>&b=\"c\""),
    ],
)
def test_the_answer_is_the_page_a_full_render_gives(
    client, request, monkeypatch, fixture, language, email, query
):
    newsletter = request.getfixturevalue(fixture)
    answers._answers.clear()
    answer(client, "first@example.com", slug=newsletter.slug, language=language, query=query)
    merged = answer(client, email, slug=newsletter.slug, language=language, query=query)
    assert any(isinstance(merge, mailmerge._Merge) for merge in answers._answers.values())
    rendered_in_full(monkeypatch)
    full = answer(client, email, slug=newsletter.slug, language=language, query=query)
    assert merged.content == full.content
    assert merged.headers.items() == full.headers.items()


def test_a_renamed_newsletter_is_answered_with_its_new_name(client, newsletter):
    answer(client, "ann@example.com", slug="weekly")
    newsletter.name = "The Monthly"
    newsletter.save()
    page = answer(client, "bob@example.com", slug="weekly").content.decode()
    assert "The Monthly" in page and "The Weekly" not in page


def test_each_visitor_sees_their_own_address_escaped(client, newsletter):
    answer(client, "ann@example.com", slug="weekly")
    page = answer(client, "bob@example.com", slug="weekly")
    assert "<strong>bob@example.com</strong>" in page.content.decode()
    assert "ann@example.com" not in page.content.decode()


def test_a_host_page_that_greets_the_signed_in_user_is_rendered_for_each(settings, newsletter):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [HOST_TEMPLATES]}]
    settings.SIGNALPOST_BASE_TEMPLATE = "host/greeting_base.html"
    pages = {}
    for name in ("alice", "bob"):
        user = get_user_model().objects.create_user(name, f"{name}@host.example", "pw")
        visitor = Client()
        visitor.force_login(user)
        pages[name] = answer(visitor, f"{name}@example.com", slug="weekly").content.decode()
    assert "Hello alice, from alice@host.example" in pages["alice"]
    assert "Hello bob, from bob@host.example" in pages["bob"]
    assert "alice" not in pages["bob"]


def test_the_shapes_a_process_keeps_are_bounded(client, newsletter, monkeypatch):
    monkeypatch.setattr(answers, "ANSWERS_KEPT_MAX", 3)
    for number in range(8):
        newsletter.name = f"Weekly {number}"
        newsletter.save()
        page = answer(client, f"n{number}@example.com", slug="weekly").content.decode()
        assert f"Weekly {number}" in page
        assert len(answers._answers) <= 3
