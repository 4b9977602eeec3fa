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

from django.conf import settings
from django.utils.safestring import mark_safe

from signalpost.newsletters import emails
from signalpost.newsletters.links import PersonalLinks, absolute
from signalpost.publishing import markdown_sandbox
from signalpost.smtp_wire import (
    address_is_plain,
    addresses_are_ascii,
    alternative_bytes,
    date_line,
    header_fold,
    header_line,
)

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
