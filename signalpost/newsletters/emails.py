"""Building and sending the emails subscribers receive about their subscriptions.

Every newsletter email carries ``List-Id``, a one-click ``List-Unsubscribe``
URL with ``List-Unsubscribe-Post`` (RFC 2369, 2919, 8058), a visible
unsubscribe link and the preference-center link, in plain text and HTML.
Templates live in ``templates/emails/``; a newsletter overrides any of them
with ``templates/emails/<slug>/<name>``.
"""

import email.policy
import re
import smtplib
from email.utils import formataddr
from urllib.parse import urlsplit

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.template.loader import select_template

from signalpost import smtp_wire
from signalpost.durable.exceptions import PermanentFailure
from signalpost.newsletters.links import (
    absolute,
    confirmation_path,
    preferences_path,
    unsubscribe_path,
)

ONE_CLICK = "List-Unsubscribe=One-Click"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
css_inliner = css_inline.CSSInliner(keep_style_tags=False)


class ListEmail(EmailMultiAlternatives):
    """An email whose headers are not folded below RFC 5322's 998-character line limit.

    At the 78-character default, Python folds an unbreakable ``List-Unsubscribe``
    URL into RFC 2047 encoded-words, which mail providers do not read as a URL:
    one-click unsubscribe would silently stop working.
    """

    def message(self, *, policy=email.policy.default):
        return super().message(policy=policy.clone(max_line_length=998))


def header_safe(text):
    """Return ``text`` on one line without control characters: safe in any header."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", text).split())


def site_domain():
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def newsletter_from(newsletter):
    if not newsletter.sender_email:
        return settings.DEFAULT_FROM_EMAIL
    return formataddr(
        (header_safe(newsletter.sender_name or newsletter.name), newsletter.sender_email)
    )


def list_id(newsletter):
    """Return the RFC 2919 ``List-Id``: the newsletter's name and ``<slug.site-domain>``."""
    name = header_safe(newsletter.name).replace('"', "").replace("<", "").replace(">", "")
    return f'"{name}" <{newsletter.slug}.{site_domain()}>'


def list_headers(*, newsletter, unsubscribe_url):
    """The list headers of every newsletter email: RFC 2919 ``List-Id``, RFC 8058 one-click."""
    return {
        "List-Id": list_id(newsletter),
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": ONE_CLICK,
    }


def template_render(*, name, newsletter, context):
    """Render ``emails/<name>``, preferring the newsletter's own ``emails/<slug>/<name>``."""
    candidates = [f"emails/{name}"]
    if newsletter is not None:
        candidates.insert(0, f"emails/{newsletter.slug}/{name}")
    return select_template(candidates).render(context)


def message_build(*, kind, profile, newsletter, context, idempotency_key):
    """Return the ``EmailMultiAlternatives`` of email ``kind`` for ``profile``.

    The Message-ID comes from the idempotency key: a rerun of the same durable
    call sends the same Message-ID, which receiving systems can de-duplicate.
    """
    context = {
        **context,
        "profile": profile,
        "newsletter": newsletter,
        "preferences_url": absolute(preferences_path(profile=profile)),
        "site_url": settings.SITE_URL,
    }
    headers = {"Message-ID": f"<{idempotency_key}.{kind}@{site_domain()}>"}
    from_email = settings.DEFAULT_FROM_EMAIL
    reply_to = None
    if newsletter is not None:
        context["unsubscribe_url"] = absolute(
            unsubscribe_path(profile=profile, newsletter=newsletter)
        )
        headers.update(
            list_headers(newsletter=newsletter, unsubscribe_url=context["unsubscribe_url"])
        )
        from_email = newsletter_from(newsletter)
        reply_to = [newsletter.reply_to] if newsletter.reply_to else None
    subject = header_safe(
        template_render(name=f"{kind}_subject.txt", newsletter=newsletter, context=context)
    )
    text = template_render(name=f"{kind}.txt", newsletter=newsletter, context=context)
    html = css_inliner.inline(
        template_render(name=f"{kind}.html", newsletter=newsletter, context=context)
    )
    message = ListEmail(
        subject=subject,
        body=text,
        from_email=from_email,
        to=[profile.email],
        reply_to=reply_to,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def message_send(message):
    """Send ``message``; a refusal of every recipient is permanent, anything else retried.

    Over Django's SMTP backend the message goes as bytes assembled by
    ``smtp_wire`` (Django's ``message()`` cost more CPU than the rest of the
    worker's task); other backends, and messages of another shape, go through
    Django.
    """
    mailer = mailers.default
    raw = smtp_wire.message_bytes(message) if isinstance(mailer, SmtpBackend) else None
    try:
        if raw is None:
            mailer.send_messages([message])
        else:
            with mailer:
                smtp_wire.smtp_send(
                    mailer.connection,
                    sender=mailer.prep_address(message.from_email),
                    recipient=message.to[0],
                    data=raw,
                )
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            raise PermanentFailure(f"recipient refused: {error.recipients}") from error
        raise


def email_confirmation_send(*, subscription, idempotency_key):
    """Email the link that confirms a pending ``subscription``."""
    profile, newsletter = subscription.profile, subscription.newsletter
    context = {
        "confirmation_url": absolute(confirmation_path(profile=profile, newsletter=newsletter)),
        "expires_days": settings.SIGNALPOST_CONFIRMATION_MAX_AGE_SECONDS // 86400,
    }
    message_send(
        message_build(
            kind="confirmation",
            profile=profile,
            newsletter=newsletter,
            context=context,
            idempotency_key=idempotency_key,
        )
    )


def email_welcome_send(*, subscription, idempotency_key):
    """Email the welcome of a newly active ``subscription``."""
    message_send(
        message_build(
            kind="welcome",
            profile=subscription.profile,
            newsletter=subscription.newsletter,
            context={},
            idempotency_key=idempotency_key,
        )
    )


def email_preferences_link_send(*, profile, idempotency_key):
    """Email ``profile`` the link to their preference center."""
    context = {"expires_days": settings.SIGNALPOST_PREFERENCES_MAX_AGE_SECONDS // 86400}
    message_send(
        message_build(
            kind="preferences_link",
            profile=profile,
            newsletter=None,
            context=context,
            idempotency_key=idempotency_key,
        )
    )
