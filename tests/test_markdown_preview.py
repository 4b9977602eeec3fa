"""The live preview renders a long body by the parts that changed, and its HTML is the
whole body's HTML."""

import itertools

import pytest

from signalpost.publishing import markdown_sandbox, rendering
from signalpost.publishing.rendering import (
    MarkdownRefused,
    markdown_sections,
    markdown_to_html,
    markdown_to_html_for_preview,
)

BODIES = [
    "Hello.\n\n# One\n\ntext *one*\n\n## Two\n\n- a\n- b\n\n    code block\n\n### Three\n\nend",
    "Intro\n\n## A\n\n```\n\n## not a heading: in a fence\n```\n\n"
    "## B\n\n~~~~\n# still code\n~~~~\n\nx",
    "## First\n\n> quoted\n> ## heading in a quote\n\n"
    "## Second\n\n| a | b |\n| - | - |\n| 1 | 2 |\n",
    "1. item\n\n    continued\n\n## After a list\n\nTerm\n:   definition\n\n## Last {: #id }\n",
    "No headings at all, *one* paragraph.",
    "Para\n## heading right after text\n\n## h2\n\ntext",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_preview_by_parts_is_the_whole_bodys_html(body):
    assert markdown_to_html_for_preview(body) == markdown_to_html(body)


@pytest.mark.parametrize(
    "body",
    [
        "See [the docs][d].\n\n## Later\n\n[d]: https://example.com",
        "Text[^1].\n\n## Notes\n\n[^1]: A footnote.",
        "HTML is used.\n\n## Later\n\n*[HTML]: HyperText",
        "## A\n\n<div>\n\n## inside raw html\n\n</div>",
    ],
)
def test_bodies_whose_parts_affect_each_other_are_rendered_whole(body):
    assert markdown_sections(body) is None
    assert markdown_to_html_for_preview(body) == markdown_to_html(body)


def test_a_changed_part_is_the_only_one_rendered_again(monkeypatch):
    body = "\n\n".join(f"## Part {n}\n\nText of part {n}." for n in range(10))
    markdown_to_html_for_preview(body)
    rendered = []
    original = markdown_sandbox.render

    def counting(text, *, timeout):
        rendered.append(text)
        return original(text, timeout=timeout)

    monkeypatch.setattr(markdown_sandbox, "render", counting)
    changed = body.replace("Text of part 4.", "Text of part 4, edited.")
    assert markdown_to_html_for_preview(changed) == markdown_to_html(changed)
    assert rendered[0] == "## Part 4\n\nText of part 4, edited.\n"


def test_the_deadline_holds_for_the_whole_body(monkeypatch, settings):
    settings.SIGNALPOST_MARKDOWN_RENDER_TIMEOUT = 0.05
    # The clock starts at 0 and reads 1 s at every look after: past the deadline.
    times = itertools.chain([0.0], itertools.repeat(1.0))
    monkeypatch.setattr(rendering.time, "monotonic", lambda: next(times))
    body = "\n\n".join(f"## Slow {n}\n\nnew text {n}" for n in range(3))
    with pytest.raises(MarkdownRefused, match="took too long"):
        markdown_to_html_for_preview(body)
