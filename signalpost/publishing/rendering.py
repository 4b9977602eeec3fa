"""Markdown to sanitised HTML, and the personalised email of an issue.

The email's HTML is rendered and its CSS inlined once per batch and variant
(readers with a name, readers without) with placeholders, its shared headers
folded once (``mail.messages.Letterhead``); each recipient's message is then a
few string replacements, built into bytes for SMTP without Python's ``email``
package (bench/README.md, Fan-out). A template whose logic looks at the
reader's values is rendered per reader instead (``IssueMessages``).
"""

import html
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from django.utils.safestring import mark_safe

from signalpost.conf import conf
from signalpost.mail import verp
from signalpost.mail.messages import (
    Bodies,
    Letterhead,
    Message,
    QuotedPrintableLines,
    QuotedPrintableTemplate,
    quoted_printable,
    site_domain,
)
from signalpost.newsletters import emails, mailmerge
from signalpost.newsletters.links import PersonalLinks, absolute
from signalpost.publishing import markdown_sandbox, plaintext
from signalpost.publishing.tracking import TrackedBody

# What a template may observe of its reader, as ``IssueMessages`` names them.
_PERSONAL = ("name", "email", "unsubscribe", "preferences")

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
    timeout = conf.MARKDOWN_RENDER_TIMEOUT
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
    timeout = conf.MARKDOWN_RENDER_TIMEOUT
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

    return reverse("signalpost:issue", args=[issue.newsletter.slug, issue.slug])


def inbox_preview_text(*, preview_text: str, body_html: str) -> str:
    """What inboxes show after the subject (the email's hidden preheader): an issue's own
    ``preview_text``, or else the first sentence of its ``body_html``."""
    return preview_text.strip() or plaintext.preview_text(body_html)


class IssueMessages:
    """Builds each recipient's email of one issue from templates rendered once per variant.

    What a template may observe of the reader is their name, address and two
    links. It is rendered once per batch for readers with a name and once for
    readers without (``{% if name %}``, ``|default`` decide by that), each time
    with placeholders that every message then replaces. Before trusting a
    placeholder, a variant is rendered twice with different placeholders: if the
    template transforms a personal value (``|lower``, ``|truncatechars``...) the
    two renderings differ by more than the placeholders, and if it compares one
    (``{% if name == "Ann" %}``) ``mailmerge.observed`` notices; either way that variant is
    rendered for each reader instead (correct; ~0.9 ms of CPU per message instead of
    ~0.25 for a long issue, docs/email.md).

    ``subject_prefix`` goes before the issue's subject (``"[Test] "`` for a test email).
    With ``tracking`` (sends, not tests or previews), the body's links and an open pixel
    follow the newsletter's engagement settings (``publishing.tracking``).
    """

    def __init__(self, issue, *, subject_prefix="", tracking=False):
        self.issue = issue
        self.newsletter = issue.newsletter
        body_html = issue.body_html
        self.tracked = _tracked_body(issue) if tracking else None
        body_text = plaintext.html_to_text(body_html)
        if self.tracked is not None:
            body_html = self.tracked.html
            if self.newsletter.track_plain_text_links:
                body_text = self.tracked.text
        self.shared = {
            "issue": issue,
            "newsletter": self.newsletter,
            "body_html": mark_safe(body_html),  # sanitised by markdown_to_html
            "body_text": body_text,
            "preview_text": inbox_preview_text(
                preview_text=issue.preview_text, body_html=issue.body_html
            ),
            # A private newsletter's issues have no public page to link to.
            "web_url": absolute(issue_web_path(issue)) if self.newsletter.is_public else "",
            "site_url": conf.SITE_URL,
        }
        # Two sets that differ from their first character, in case and in length, so that
        # any filter that looks inside a value (|first, |truncatechars, |lower, |length)
        # gives the two renderings different text.
        self._placeholders = tuple(
            {field: f"{start}{secrets.token_hex(6)}{field}{pad}" for field in _PERSONAL}
            for start, pad in (("Sp", ""), ("qZ", "xyz"))
        )
        # has a name -> (text, html) with placeholders, or None: render for each reader.
        self._variants: dict[bool, tuple[str, str] | None] = {}
        # has a name -> the variant's two parts as quoted-printable templates.
        self._templates: dict[bool, tuple[QuotedPrintableTemplate, QuotedPrintableTemplate]] = {}
        marks = [re.escape(mark) for mark in self._placeholders[0].values() if mark]
        if self.tracked is not None:
            marks.append(self.tracked.placeholders.pattern)
        self._personal = re.compile("|".join(marks))
        self.letterhead = Letterhead(
            subject=subject_prefix + issue.subject, newsletter=self.newsletter
        )
        self.domain = site_domain()
        self.links = PersonalLinks(newsletter=self.newsletter)

    def _render(
        self, values: dict[str, str], probe: mailmerge.Probe | None = None
    ) -> tuple[str, str]:
        """Render both parts for one reader's ``values`` (or placeholders standing in)."""
        if probe is not None:
            values = {field: mailmerge.observed(value, probe) for field, value in values.items()}
        context = {
            **self.shared,
            "profile": {"name": values["name"], "email": values["email"]},
            "name": values["name"],
            "unsubscribe_url": values["unsubscribe"],
            "preferences_url": values["preferences"],
        }
        render = emails.template_render
        text = render(name="issue.txt", newsletter=self.newsletter, context=context)
        body_html = emails.css_inliner.inline(
            render(name="issue.html", newsletter=self.newsletter, context=context)
        )
        return text, body_html

    def _variant(self, has_name: bool) -> tuple[str, str] | None:
        """The parts rendered with placeholders for readers with(out) a name, if safe."""
        if has_name not in self._variants:
            renderings = []
            probe = mailmerge.Probe()
            for placeholders in self._placeholders:
                values = dict(placeholders) if has_name else {**placeholders, "name": ""}
                renderings.append((values, self._render(values, probe)))
            (first, rendered), (second, expected) = renderings
            substituted = tuple(_substitute(part, first, second) for part in rendered)
            safe = not probe.refused and substituted == expected
            self._variants[has_name] = rendered if safe else None
        return self._variants[has_name]

    def message_id(self, delivery):
        """The same for every attempt, so a resend after a crash can be recognised."""
        return f"<issue-{self.issue.pk}.delivery-{delivery.pk}@{self.domain}>"

    def personalise(self, delivery, *, profile, message_id=None, before_render=None) -> Message:
        """Return one recipient's ``Message`` of this issue (Message-ID: the delivery's).

        ``before_render`` is called before any template is rendered for this reader
        (the first of a variant, or a reader whose variant renders per reader): a
        template may query the database, and the sender's pipelined sent mark
        (``writes.SentMarks``) must be settled first.
        """
        unsubscribe = self.links.unsubscribe_url(profile=profile)
        values = {
            "name": profile.name or "",
            "email": delivery.email,
            "unsubscribe": unsubscribe,
            "preferences": self.links.preferences_url(profile=profile),
        }
        has_name = bool(values["name"])
        if before_render is not None and self._variants.get(has_name) is None:
            before_render()
        variant = self._variant(has_name)
        track = None
        if self.tracked is not None and delivery.pk:
            track = self.tracked.personaliser(issue_id=self.issue.pk, delivery_id=delivery.pk)
        if variant is None:
            text, body_html = self._render(values)
            if track is not None:
                text, body_html = track(text), track(body_html)
            bodies: Bodies = Bodies(text=text, html=body_html)
        else:
            placeholders = self._placeholders[0]
            escaped = {field: html.escape(value) for field, value in values.items()}
            bodies = _PersonalBodies(
                variant,
                self._variant_templates(has_name, variant),
                text=_personaliser(placeholders, values, track),
                html=_personaliser(placeholders, escaped, track),
            )
        return self.letterhead.message(
            to=delivery.email,
            message_id=message_id or self.message_id(delivery),
            unsubscribe_url=unsubscribe,
            bodies=bodies,
            envelope_sender=verp.return_path(kind="d", pk=delivery.pk),
        )

    def _variant_templates(
        self, has_name: bool, variant: tuple[str, str]
    ) -> tuple[QuotedPrintableTemplate, QuotedPrintableTemplate]:
        if has_name not in self._templates:
            self._templates[has_name] = (
                QuotedPrintableTemplate(variant[0], self._personal),
                QuotedPrintableTemplate(variant[1], self._personal),
            )
        return self._templates[has_name]


def _personaliser(
    placeholders: dict[str, str], values: dict[str, str], track: Callable[[str], str] | None
) -> Callable[[str], str]:
    """One reader's values in place of the placeholders, then their link tokens: for a
    whole part or any of its lines alike (no placeholder holds a line end)."""

    def personalise(part: str) -> str:
        part = _substitute(part, placeholders, values)
        return part if track is None else track(part)

    return personalise


class _PersonalBodies(Bodies):
    """One reader's parts of a variant: as bytes from its templates, as text only if asked.

    Either form is the parts' ``personalise``-d variant text: the bytes are
    ``Bodies.quoted_printable``'s for that text (``QuotedPrintableTemplate``), and
    when a template cannot tell (a value holding a line break) they are made from it.
    """

    def __init__(
        self,
        variant: tuple[str, str],
        templates: tuple[QuotedPrintableTemplate, QuotedPrintableTemplate],
        *,
        text: Callable[[str], str],
        html: Callable[[str], str],
    ):
        self._variant = variant
        self._templates = templates
        self._personalise = (text, html)
        self._parts: list[str | None] = [None, None]

    def _part(self, number: int) -> str:
        part = self._parts[number]
        if part is None:
            part = self._personalise[number](self._variant[number])
            self._parts[number] = part
        return part

    @property
    def text(self) -> str:  # type: ignore[override]
        return self._part(0)

    @property
    def html(self) -> str:  # type: ignore[override]
        return self._part(1)

    def quoted_printable(self, lines: QuotedPrintableLines) -> tuple[bytes, bytes]:
        encoded = []
        for number, template in enumerate(self._templates):
            part = None
            if template.usable:
                part = template.encode(self._personalise[number])
            if part is None:
                part = quoted_printable(self._part(number), lines)
            encoded.append(part)
        return encoded[0], encoded[1]


def _tracked_body(issue) -> TrackedBody | None:
    """The body prepared for tracking per the newsletter's settings, or None when off."""
    newsletter = issue.newsletter
    if not (newsletter.track_clicks or newsletter.track_opens):
        return None
    return TrackedBody(
        body_html=issue.body_html,
        site_url=conf.SITE_URL,
        clicks=newsletter.track_clicks,
        opens=newsletter.track_opens,
        text_for=plaintext.html_to_text,
    )


def _substitute(text: str, placeholders: dict[str, str], values: dict[str, str]) -> str:
    """``text`` with each field's placeholder replaced by its value."""
    for field, placeholder in placeholders.items():
        if placeholder:
            text = text.replace(placeholder, values[field])
    return text
