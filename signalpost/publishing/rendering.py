"""Markdown to sanitised HTML, and the personalised email of an issue.

The email's HTML is rendered and its CSS inlined once per batch with
placeholders; each recipient's message is then a few string replacements.
For SMTP the message's bytes are assembled directly from headers folded once
per batch: Python's ``email`` package spends ~6 ms of CPU per message parsing
and re-folding headers and quoted-printable-encoding in pure Python, which
alone would cap a worker at ~150 messages a second (bench/README.md, Fan-out).
"""

import email.policy
import html
import re

import markdown
import nh3
from django.conf import settings
from django.utils.safestring import mark_safe

from signalpost.newsletters import emails
from signalpost.newsletters.links import PersonalLinks, absolute
from signalpost.smtp_wire import (
    address_is_plain,
    addresses_are_ascii,
    alternative_bytes,
    date_line,
    header_fold,
    header_line,
)

MARKDOWN_EXTENSIONS = ["extra", "sane_lists"]
ALLOWED_TAGS = nh3.ALLOWED_TAGS | {"figure", "figcaption"}

PLACEHOLDER_NAME = "SIGNALPOST-PLACEHOLDER-NAME"
PLACEHOLDER_EMAIL = "SIGNALPOST-PLACEHOLDER-EMAIL"
PLACEHOLDER_UNSUBSCRIBE = "SIGNALPOST-PLACEHOLDER-UNSUBSCRIBE"
PLACEHOLDER_PREFERENCES = "SIGNALPOST-PLACEHOLDER-PREFERENCES"


# python-markdown looks for the end of every "[" (link, image, footnote,
# abbreviation) and of every "<" that may open a tag or an autolink through the
# rest of its block, so rendering a block costs about (its openers that never
# close, and its deepest nesting of "[") x (its length): "[" * 10_000 takes
# ~18 s, a hundred stray "[" in one 400 kB paragraph ~12 s. Prose closes its
# brackets within a line or two, so its blocks score their length or a few
# times it, while MARKDOWN_COST_MAX allows about half a second of this work
# per block (measured: ~3e-7 s a unit). Counting is linear, far cheaper than
# any render, and needs no timer (none can stop a regular expression at work).
MARKDOWN_COST_MAX = 2_000_000
BLOCK_SEPARATOR = re.compile(r"\n[ \t]*\n")
BRACKET = re.compile(r"[\[\]]")
# A "<" that may start a tag or autolink, up to its ">" (group 1) or the next "<".
ANGLE_OPENER = re.compile(r"<[A-Za-z/!?][^<>]*(>)?")


class MarkdownRefused(ValueError):
    """Markdown that cannot be rendered: nested too deeply, or too costly to parse."""


def markdown_cost(text):
    """Return the highest render cost (see MARKDOWN_COST_MAX) of ``text``'s blocks."""
    highest = 0
    for block in BLOCK_SEPARATOR.split(text):
        depth = deepest = 0
        for bracket in BRACKET.finditer(block):
            if bracket.group() == "[":
                depth += 1
                deepest = max(deepest, depth)
            elif depth:
                depth -= 1
        angles = sum(1 for opener in ANGLE_OPENER.finditer(block) if opener.group(1) is None)
        highest = max(highest, (depth + deepest + angles) * len(block))
    return highest


def markdown_to_html(text):
    """Return ``text`` (Markdown) as HTML with scripts, handlers and unknown tags removed.

    Raises ``MarkdownRefused`` for Markdown that would take python-markdown
    seconds (see MARKDOWN_COST_MAX) or nests deeper than it can recurse.
    """
    if markdown_cost(text) > MARKDOWN_COST_MAX:
        raise MarkdownRefused(
            "Too many brackets ([ or <) are left open or nested in one paragraph: "
            "close them, or escape them as \\[ and \\<."
        )
    try:
        rendered = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    except RecursionError as error:
        # "1. " * 500 is a list nested 500 deep: python-markdown recurses per level.
        raise MarkdownRefused(
            "Lists or quotes are nested too deeply inside each other to be rendered."
        ) from error
    return nh3.clean(rendered, tags=ALLOWED_TAGS, link_rel="noopener noreferrer")


def issue_web_path(issue):
    from django.urls import reverse

    return reverse("issue", args=[issue.newsletter.slug, issue.slug])


class IssueMessages:
    """Builds each recipient's email of one issue from templates rendered once."""

    def __init__(self, issue):
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
        self.subject = emails.header_safe(issue.subject)
        self.from_email = emails.newsletter_from(self.newsletter)
        self.reply_to = [self.newsletter.reply_to] if self.newsletter.reply_to else None
        self.list_id = emails.list_id(self.newsletter)
        self.domain = emails.site_domain()
        self.links = PersonalLinks(newsletter=self.newsletter)
        # Non-ASCII addresses need Django's IDNA handling: those messages take its path.
        self.addresses_ascii = addresses_are_ascii(self.from_email, *(self.reply_to or []))
        shared = [("MIME-Version", "1.0"), ("Subject", self.subject), ("From", self.from_email)]
        if self.reply_to:
            shared.append(("Reply-To", ", ".join(self.reply_to)))
        shared += [("List-Id", self.list_id), ("List-Unsubscribe-Post", emails.ONE_CLICK)]
        self.shared_header_bytes = b"".join(header_fold(name, value) for name, value in shared)

    def message_id(self, delivery):
        """The same for every attempt, so a resend after a crash can be recognised."""
        return f"<issue-{self.issue.pk}.delivery-{delivery.pk}@{self.domain}>"

    def personalise(self, delivery, *, profile):
        """Return one recipient's ``PersonalMessage`` of this issue."""
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
        return PersonalMessage(
            self,
            to=delivery.email,
            message_id=self.message_id(delivery),
            unsubscribe_url=unsubscribe,
            text=text,
            html=body_html,
        )

    def message_for(self, delivery, *, profile):
        """Return the ``EmailMultiAlternatives`` of this issue for one delivery."""
        return self.personalise(delivery, profile=profile).email()


class PersonalMessage:
    """One recipient's email: a Django message for any backend, or bytes for SMTP."""

    def __init__(self, messages, *, to, message_id, unsubscribe_url, text, html):
        self.messages = messages
        self.to = to
        self.message_id = message_id
        self.unsubscribe_url = unsubscribe_url
        self.text = text
        self.html = html

    def headers(self):
        return {
            "Message-ID": self.message_id,
            **emails.list_headers(
                newsletter=self.messages.newsletter, unsubscribe_url=self.unsubscribe_url
            ),
        }

    def email(self):
        """Return it as ``EmailMultiAlternatives``, for backends other than SMTP (and tests)."""
        messages = self.messages
        message = emails.ListEmail(
            subject=messages.subject,
            body=self.text,
            from_email=messages.from_email,
            to=[self.to],
            reply_to=messages.reply_to,
            headers=self.headers(),
        )
        message.attach_alternative(self.html, "text/html")
        return message

    def as_bytes(self):
        """Return the message as ``email()`` would send it over SMTP, built ~8x faster."""
        if not (self.messages.addresses_ascii and address_is_plain(self.to)):
            return self.email().message(policy=email.policy.SMTP).as_bytes()
        header_block = b"".join(
            [
                self.messages.shared_header_bytes,
                f"To: {self.to}\r\n".encode("ascii"),
                date_line(),
                header_line("Message-ID", self.message_id),
                header_line("List-Unsubscribe", f"<{self.unsubscribe_url}>"),
            ]
        )
        return alternative_bytes(header_block=header_block, text=self.text, html=self.html)
