"""Each reader's copy of an issue says what its templates say for that reader.

An issue is rendered once per batch and variant with placeholders standing in
for the reader's name, address and links (publishing/rendering.py). These tests
hold that what a template's logic sees is the reader's own value: ``{% if name
%}``, ``|default``, comparisons and filters behave as written in an override,
while the default templates still fan out from a constant number of renderings.
Also the plain-text part and the preview text.
"""

import re

import pytest

from signalpost.accounts.models import Profile
from signalpost.newsletters import emails
from signalpost.publishing.models import Delivery
from signalpost.publishing.plaintext import html_to_text, preview_text
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import issue_create
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db

READERS = [("ann@example.com", "Ann"), ("bob@example.com", ""), ("cy@example.com", "Cyrus")]


@pytest.fixture
def overrides(settings, tmp_path):
    """Write per-newsletter template overrides: ``overrides(slug, name=source, ...)``."""
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]

    def write(slug, **sources):
        folder = tmp_path / "emails" / slug
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in sources.items():
            (folder / name.replace("_", ".")).write_text(source)

    return write


def copies(issue, readers=READERS):
    """Each reader's (text, html) of ``issue``, built as a batch builds them."""
    messages = IssueMessages(issue)
    built = {}
    for number, (address, name) in enumerate(readers, 1):
        profile = Profile(pk=number, email=address, name=name)
        delivery = Delivery(pk=number, issue=issue, email=address)
        message = messages.personalise(delivery, profile=profile)
        built[address] = (message.text, message.html)
    return built


def test_an_override_that_tests_the_name_says_what_it_says_for_each_reader(overrides):
    newsletter = make_newsletter(slug="kind")
    overrides(
        "kind",
        issue_txt="{% if name %}Dear {{ name }}{% else %}Dear reader{% endif %}; "
        "hi {{ name|default:'friend' }}; {{ profile.name|default:'nobody' }}; "
        "{% firstof name 'you there' %}",
        issue_html="<p>{% if profile.name %}Dear {{ profile.name }}{% else %}Dear reader"
        "{% endif %} {{ name|default:'friend' }}</p>",
    )
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Body.")

    built = copies(issue)

    assert built["ann@example.com"][0] == "Dear Ann; hi Ann; Ann; Ann"
    assert built["bob@example.com"][0] == "Dear reader; hi friend; nobody; you there"
    assert built["cy@example.com"][0] == "Dear Cyrus; hi Cyrus; Cyrus; Cyrus"
    assert "Dear Ann Ann" in built["ann@example.com"][1]
    assert "Dear reader friend" in built["bob@example.com"][1]


@pytest.mark.parametrize(
    ("issue_txt", "issue_html", "texts", "ann_html"),
    [
        pytest.param(
            '{% if name == "Ann" %}VIP {% endif %}{% if "y" in name %}has y {% endif %}'
            "{% if profile.email < 'b' %}early {% endif %}{{ name }}",
            "<p>{{ name }}</p>",
            ("VIP early Ann", "", "has y Cyrus"),
            r"<p>Ann</p>",
            id="compares",
        ),
        pytest.param(
            "{{ name|lower }} {{ name|length }} {{ profile.email|upper }} "
            "{{ name|truncatechars:3 }}",
            "<p>{{ name|title }} {{ unsubscribe_url|length }}</p>",
            ("ann 3 ANN@EXAMPLE.COM Ann", " 0 BOB@EXAMPLE.COM ", "cyrus 5 CY@EXAMPLE.COM Cy…"),
            r"<p>Ann \d+</p>",
            id="transforms",
        ),
    ],
)
def test_an_override_that_compares_or_transforms_the_name_decides_by_the_readers_own(
    overrides, issue_txt, issue_html, texts, ann_html
):
    newsletter = make_newsletter(slug="picky")
    overrides("picky", issue_txt=issue_txt, issue_html=issue_html)
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Body.")

    built = copies(issue)

    assert tuple(built[address][0] for address, _ in READERS) == texts
    assert re.search(ann_html, built["ann@example.com"][1])


@pytest.mark.parametrize(
    ("source", "ann", "bob"),
    [
        ("{{ name|truncatechars:3 }}", "Ann", ""),
        ("{{ name|first }}", "A", ""),
        ("{{ name|slice:':2' }}", "An", ""),
        ("{{ profile.email|truncatechars:4 }}", "ann…", "bob…"),
    ],
)
def test_a_filter_that_keeps_only_part_of_a_value_gets_the_readers_own(overrides, source, ann, bob):
    newsletter = make_newsletter(slug="parts")
    overrides("parts", issue_txt=source, issue_html="<p>{{ name }}</p>")
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Body.")

    built = copies(issue)

    assert built["ann@example.com"][0] == ann
    assert built["bob@example.com"][0] == bob


def test_a_name_with_markup_is_escaped_in_html_and_as_written_in_text(overrides):
    newsletter = make_newsletter(slug="plain")
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Body.")

    built = copies(issue, [("eve@example.com", "<b>Eve</b> & co")])

    text, html = built["eve@example.com"]
    assert "Hello <b>Eve</b> & co," in text
    assert "Hello &lt;b&gt;Eve&lt;/b&gt; &amp; co," in html


def test_the_default_templates_fan_out_from_a_constant_number_of_renderings(monkeypatch):
    newsletter = make_newsletter(slug="fast")
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown="Body.")
    calls = []
    real = emails.template_render

    def counting(**kwargs):
        calls.append(kwargs["name"])
        return real(**kwargs)

    monkeypatch.setattr(emails, "template_render", counting)
    many = [(f"r{n}@example.com", f"Reader {n}" if n % 2 else "") for n in range(200)]

    built = copies(issue, many)

    # Two variants (with and without a name), each rendered twice to check the
    # placeholders, each rendering two templates: 8, however many readers.
    assert len(calls) == 8
    assert "Hello Reader 1," in built["r1@example.com"][0]
    assert "Hello," in built["r0@example.com"][0]
    assert "r1@example.com" in built["r1@example.com"][0]


def test_the_plain_text_part_has_no_markdown_punctuation_and_numbers_its_links():
    newsletter = make_newsletter(slug="texty")
    body = (
        "Intro with **bold**, _em_ and a [link](https://example.com/one).\n\n"
        "## Section\n\n![Chart](https://example.com/chart.png)\n\n"
        "```\ncode line\n```\n\n- first\n- second [again](https://example.com/one)\n\n"
        "1. one\n2. two\n\n> quoted\n"
    )
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown=body)

    text, _ = copies(issue, [("ann@example.com", "Ann")])["ann@example.com"]

    for punctuation in ("**", "](", "![", "```", "## ", "_em_"):
        assert punctuation not in text
    assert "Intro with bold, em and a link [1]." in text
    assert "Section\n=======" in text
    assert "[Image: Chart] [2]" in text
    assert "    code line" in text
    assert "• first\n• second again [1]" in text
    assert "1. one\n2. two" in text
    assert "│ quoted" in text
    assert "[1] https://example.com/one\n[2] https://example.com/chart.png" in text


def test_the_preview_text_is_the_first_sentence_and_hidden():
    newsletter = make_newsletter(slug="preview")
    body = "## Not this heading\n\nThe first sentence here. Not the second one.\n"
    issue = issue_create(newsletter=newsletter, subject="One", body_markdown=body)

    _, html = copies(issue, [("ann@example.com", "Ann")])["ann@example.com"]

    hidden = re.search(r'<div class="preview" style="([^"]*)">([^<]*)', html)
    assert hidden is not None
    assert "display: none" in hidden.group(1)
    assert hidden.group(2).startswith("The first sentence here.")
    assert "second" not in hidden.group(2)


def test_html_to_text_and_preview_text_on_hostile_html():
    assert html_to_text("<p>a<b>unclosed <a href='x'>link") == "aunclosed link [1]\n\nLinks:\n[1] x"
    assert html_to_text("") == ""
    assert html_to_text("</li></ul></blockquote></pre>text") == "text"
    long = "word " * 100
    assert len(preview_text(f"<p>{long}</p>")) <= 140
    assert preview_text("<pre>only code</pre>") == ""
