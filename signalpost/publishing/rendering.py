"""Markdown to sanitised HTML, and the personalised email of an issue.

The email's HTML is rendered and its CSS inlined once per batch with
placeholders; each recipient's message is then a few string replacements,
which is what lets one worker send hundreds of personalised messages a second.
"""

import html

import markdown
import nh3
from django.conf import settings
from django.utils.safestring import mark_safe

from signalpost.newsletters import emails
from signalpost.newsletters.links import absolute, preferences_path, unsubscribe_path

MARKDOWN_EXTENSIONS = ["extra", "sane_lists"]
ALLOWED_TAGS = nh3.ALLOWED_TAGS | {"figure", "figcaption"}

PLACEHOLDER_NAME = "SIGNALPOST-PLACEHOLDER-NAME"
PLACEHOLDER_EMAIL = "SIGNALPOST-PLACEHOLDER-EMAIL"
PLACEHOLDER_UNSUBSCRIBE = "SIGNALPOST-PLACEHOLDER-UNSUBSCRIBE"
PLACEHOLDER_PREFERENCES = "SIGNALPOST-PLACEHOLDER-PREFERENCES"


def markdown_to_html(text):
    """Return ``text`` (Markdown) as HTML with scripts, handlers and unknown tags removed."""
    rendered = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
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
            "web_url": absolute(issue_web_path(issue)),
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

    def message_id(self, delivery):
        """The same for every attempt, so a resend after a crash can be recognised."""
        return f"<issue-{self.issue.pk}.delivery-{delivery.pk}@{self.domain}>"

    def message_for(self, delivery, *, profile):
        """Return the ``EmailMultiAlternatives`` of this issue for one delivery."""
        unsubscribe = absolute(unsubscribe_path(profile=profile, newsletter=self.newsletter))
        preferences = absolute(preferences_path(profile=profile))
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
        message = emails.ListEmail(
            subject=self.subject,
            body=text,
            from_email=self.from_email,
            to=[delivery.email],
            reply_to=self.reply_to,
            headers={
                "Message-ID": self.message_id(delivery),
                "List-Id": self.list_id,
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        message.attach_alternative(body_html, "text/html")
        return message
