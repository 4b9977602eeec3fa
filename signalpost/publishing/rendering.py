"""Markdown to sanitised HTML, and the personalised email of an issue.

The email's HTML is rendered and its CSS inlined once per batch with
placeholders, its shared headers folded once (``mail.messages.Letterhead``);
each recipient's message is then a few string replacements, built into bytes
for SMTP without Python's ``email`` package (bench/README.md, Fan-out).
"""

import html
import re
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.utils.safestring import mark_safe

from signalpost.mail.messages import Letterhead, Message, site_domain
from signalpost.newsletters import emails
from signalpost.newsletters.links import PersonalLinks, absolute
from signalpost.publishing import markdown_sandbox

PLACEHOLDER_NAME = "SIGNALPOST-PLACEHOLDER-NAME"
PLACEHOLDER_EMAIL = "SIGNALPOST-PLACEHOLDER-EMAIL"
PLACEHOLDER_UNSUBSCRIBE = "SIGNALPOST-PLACEHOLDER-UNSUBSCRIBE"
PLACEHOLDER_PREFERENCES = "SIGNALPOST-PLACEHOLDER-PREFERENCES"

# What the writer is told, by why the renderer gave no HTML (RenderFailed.kind).
REFUSALS = {
    "timeout": (
        "The body took too long to render (over {timeout:g} s). Markdown slows down on "
        "constructs such as many [ or < left open, long runs of backslashes, thousands of "
        "footnote or abbreviation definitions, or HTML blocks nested deep inside each other: "
        "escape them (\\[ and \\<), put them in a code block, or split the body into "
        "several issues."
    ),
    "recursion": (
        "Lists, quotes or HTML blocks are nested too deeply inside each other to be rendered."
    ),
    "memory": "The body needs too much memory to render: split it into several issues.",
    "crashed": "The body stopped the Markdown renderer: split it, or simplify its nesting.",
    "error": "The Markdown renderer failed on this body: simplify its unusual constructs.",
}


class MarkdownRefused(ValueError):
    """Markdown that cannot be rendered: too slow to parse, nested too deeply, or too big."""


def markdown_to_html(text: str) -> str:
    """Return ``text`` (Markdown) as HTML with scripts, handlers and unknown tags removed.

    Rendered by this process's renderer child (``markdown_sandbox``), which is
    killed after ``SIGNALPOST_MARKDOWN_RENDER_TIMEOUT`` seconds. Raises
    ``MarkdownRefused``, with a message for the writer, for a body it gives no HTML for.
    """
    timeout = settings.SIGNALPOST_MARKDOWN_RENDER_TIMEOUT
    try:
        return markdown_sandbox.render(text, timeout=timeout)
    except markdown_sandbox.RenderFailed as failure:
        raise MarkdownRefused(REFUSALS[failure.kind].format(timeout=timeout)) from failure


# What makes one part of a body change another's HTML: reference links, footnotes and
# abbreviations defined anywhere apply everywhere; raw HTML blocks may span headings.
_WHOLE_BODY_ONLY = re.compile(r"^ {0,3}(\[[^\]]*\]:|\*\[[^\]]*\]:|<)", re.MULTILINE)
_HEADING = re.compile(r"#{1,6}(?: |$)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SECTIONS_KEPT = 512
_sections: OrderedDict[str, str] = OrderedDict()
_sections_lock = threading.Lock()


def markdown_sections(text: str) -> list[str] | None:
    """Split ``text`` before each top-level heading (``#`` at the start of a line after a
    blank line, outside code fences) into parts whose HTML, joined by newlines, is the
    whole body's; ``None`` when a part could change another's (reference links,
    footnotes, abbreviations, raw HTML)."""
    if _WHOLE_BODY_ONLY.search(text):
        return None
    sections: list[str] = []
    current: list[str] = []
    fence = ""
    blank_before = True
    for line in text.split("\n"):
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
        elif opening:
            fence = opening.group(1)
        elif blank_before and current and _HEADING.match(line):
            sections.append("\n".join(current))
            current = []
        current.append(line)
        blank_before = not line.strip()
    sections.append("\n".join(current))
    return sections


def markdown_to_html_for_preview(text: str) -> str:
    """``markdown_to_html`` for the writing page's live preview: typing changes one part of
    a long body, so each part between top-level headings is rendered once and remembered
    (the last 512 parts of this process). The deadline holds for the whole body. Falls
    back to rendering the whole body when parts could affect each other."""
    sections = markdown_sections(text)
    if sections is None or len(sections) == 1:
        return markdown_to_html(text)
    timeout = settings.SIGNALPOST_MARKDOWN_RENDER_TIMEOUT
    deadline = time.monotonic() + timeout
    parts = []
    for section in sections:
        with _sections_lock:
            known = _sections.get(section)
            if known is not None:
                _sections.move_to_end(section)
        if known is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MarkdownRefused(REFUSALS["timeout"].format(timeout=timeout))
            try:
                known = markdown_sandbox.render(section, timeout=left)
            except markdown_sandbox.RenderFailed as failure:
                raise MarkdownRefused(REFUSALS[failure.kind].format(timeout=timeout)) from failure
            with _sections_lock:
                _sections[section] = known
                while len(_sections) > _SECTIONS_KEPT:
                    _sections.popitem(last=False)
        parts.append(known)
    return "\n".join(part for part in parts if part)


def issue_web_path(issue):
    from django.urls import reverse

    return reverse("issue", args=[issue.newsletter.slug, issue.slug])


class IssueMessages:
    """Builds each recipient's email of one issue from templates rendered once.

    ``subject_prefix`` goes before the issue's subject (``"[Test] "`` for a test email).
    """

    def __init__(self, issue, *, subject_prefix=""):
        self.issue = issue
        self.newsletter = issue.newsletter
        context = {
            "issue": issue,
            "newsletter": self.newsletter,
            "body_html": mark_safe(issue.body_html),  # sanitised by markdown_to_html
            "body_text": issue.body_markdown,
            # A private newsletter's issues have no public page to link to.
            "web_url": absolute(issue_web_path(issue)) if self.newsletter.is_public else "",
            "profile": {"name": PLACEHOLDER_NAME, "email": PLACEHOLDER_EMAIL},
            "name": PLACEHOLDER_NAME,
            "unsubscribe_url": PLACEHOLDER_UNSUBSCRIBE,
            "preferences_url": PLACEHOLDER_PREFERENCES,
            "site_url": settings.SITE_URL,
        }
        render = emails.template_render
        self.text = render(name="issue.txt", newsletter=self.newsletter, context=context)
        self.html = emails.css_inliner.inline(
            render(name="issue.html", newsletter=self.newsletter, context=context)
        )
        self.letterhead = Letterhead(
            subject=subject_prefix + issue.subject, newsletter=self.newsletter
        )
        self.domain = site_domain()
        self.links = PersonalLinks(newsletter=self.newsletter)

    def message_id(self, delivery):
        """The same for every attempt, so a resend after a crash can be recognised."""
        return f"<issue-{self.issue.pk}.delivery-{delivery.pk}@{self.domain}>"

    def personalise(self, delivery, *, profile, message_id=None) -> Message:
        """Return one recipient's ``Message`` of this issue (Message-ID: the delivery's)."""
        unsubscribe = self.links.unsubscribe_url(profile=profile)
        preferences = self.links.preferences_url(profile=profile)
        # Templates write "Hello{{ name }},": a name brings its own space.
        name = f" {profile.name}" if profile.name else ""
        text = (
            self.text.replace(PLACEHOLDER_NAME, name)
            .replace(PLACEHOLDER_EMAIL, delivery.email)
            .replace(PLACEHOLDER_UNSUBSCRIBE, unsubscribe)
            .replace(PLACEHOLDER_PREFERENCES, preferences)
        )
        body_html = (
            self.html.replace(PLACEHOLDER_NAME, html.escape(name))
            .replace(PLACEHOLDER_EMAIL, html.escape(delivery.email))
            .replace(PLACEHOLDER_UNSUBSCRIBE, html.escape(unsubscribe))
            .replace(PLACEHOLDER_PREFERENCES, html.escape(preferences))
        )
        return self.letterhead.message(
            to=delivery.email,
            message_id=message_id or self.message_id(delivery),
            unsubscribe_url=unsubscribe,
            text=text,
            html=body_html,
        )
