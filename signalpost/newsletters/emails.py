"""The emails subscribers receive about their subscriptions: confirmation, welcome, preference link.

Each is rendered from templates here and built and sent by ``signalpost.mail``
like every other email (docs/email.md). Every newsletter email carries
``List-Id``, a one-click ``List-Unsubscribe`` URL with ``List-Unsubscribe-Post``
(RFC 2369, 2919, 8058), a visible unsubscribe link and the preference-center
link, in plain text and HTML. Templates live in ``templates/emails/``; a
newsletter overrides any of them with ``templates/emails/<slug>/<name>``.
"""

import contextlib
import functools
import smtplib
from contextvars import ContextVar
from typing import Any

import css_inline
from django.conf import settings
from django.core.mail import mailers
from django.template.loader import select_template
from django.utils import translation

from signalpost.conf import conf
from signalpost.durable.exceptions import PermanentFailure
from signalpost.mail import verp
from signalpost.mail.messages import Letterhead, Message, site_domain
from signalpost.mail.transport import Transport, message_send
from signalpost.newsletters import mailmerge
from signalpost.newsletters.branding import brand_for
from signalpost.newsletters.languages import email_language, language_supported
from signalpost.newsletters.links import PersonalLinks, absolute, preferences_path
from signalpost.newsletters.mailtemplates import template_render_stored
from signalpost.newsletters.selectors import (
    email_template_stored,
    newsletter_languages_subscribed,
)

# @media rules (dark mode) cannot be inlined: they stay in a <style> of their own.
css_inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True)


def template_render(*, name, newsletter, context, language=None):
    """Render ``emails/<name>``, preferring the newsletter's own ``emails/<slug>/<name>``.

    A template stored in the admin (``EmailTemplate``: the newsletter's own, then the one
    for every newsletter) comes before both files. It is rendered in ``language``, by
    default the newsletter's (``languages.email_language``): never in whatever language
    the worker process last had active.
    """
    context = {"brand": brand_for(newsletter), **context}
    stored = _template_stored(name=name, newsletter=newsletter)
    with translation.override(language or email_language(newsletter)):
        if stored is not None:
            return template_render_stored(stored, context)
        candidates = [f"emails/{name}"]
        if newsletter is not None:
            candidates.insert(0, f"emails/{newsletter.slug}/{name}")
        return select_template(candidates).render(context)


# The stored templates a batch of emails has looked up: {(name, newsletter pk): body}.
_stored_in_batch: ContextVar[dict[tuple[str, int | None], str | None] | None] = ContextVar(
    "stored_templates_in_batch", default=None
)


def _template_stored(*, name, newsletter):
    """``email_template_stored``, asked once per template and newsletter within a batch."""
    memo = _stored_in_batch.get()
    if memo is None:
        return email_template_stored(name=name, newsletter=newsletter)
    key = (name, newsletter.pk if newsletter is not None else None)
    if key not in memo:
        memo[key] = email_template_stored(name=name, newsletter=newsletter)
    return memo[key]


def profile_email_language(profile):
    """The language of an email to ``profile`` about no one newsletter (the preference
    link): that of every newsletter they receive when they share one, else the site's."""
    languages = {
        code or settings.LANGUAGE_CODE for code in newsletter_languages_subscribed(profile=profile)
    }
    if len(languages) == 1:
        (code,) = languages
        return language_supported(code) or settings.LANGUAGE_CODE
    return settings.LANGUAGE_CODE


def message_build(*, kind, profile, newsletter, context, idempotency_key, language=None) -> Message:
    """Return the ``Message`` of subscription email ``kind`` for ``profile``, in
    ``language`` (by default the newsletter's, ``template_render``).

    The Message-ID comes from the idempotency key: a rerun of the same durable
    call sends the same Message-ID, which receiving systems can de-duplicate.
    Within a batch (``emails_send``) each template is rendered once and each
    person's values filled in (``mailmerge``), and the letterhead is made once.
    """
    context = {**context, "profile": profile, "newsletter": newsletter, "site_url": conf.SITE_URL}
    if newsletter is None:
        context["preferences_url"] = absolute(preferences_path(profile=profile))
    else:
        links = _links(newsletter)
        context["preferences_url"] = links.preferences_url(profile=profile)
        context["unsubscribe_url"] = links.unsubscribe_url(profile=profile)
    part = _part_renderer(
        profile=profile, newsletter=newsletter, language=language, context=context
    )
    subject = part(f"{kind}_subject.txt")
    return _letterhead(subject=subject, newsletter=newsletter).message(
        to=profile.email,
        message_id=f"<{idempotency_key}.{kind}@{site_domain()}>",
        unsubscribe_url=context.get("unsubscribe_url"),
        envelope_sender=verp.return_path(kind="p", pk=profile.pk),
        text=part(f"{kind}.txt"),
        html=part(f"{kind}.html", finish=css_inliner.inline),
    )


# A batch's merged templates and letterheads (``mailmerge``): None outside a batch.
_merges_in_batch: ContextVar[dict[Any, Any] | None] = ContextVar("merges_in_batch", default=None)


def _unchanged(text):
    return text


def _part_renderer(*, profile, newsletter, language, context):
    """Return ``part(name, finish=...)``: template ``name`` rendered for ``profile``
    with ``context``, then ``finish``ed; once per batch and filled in, when it can be."""
    render = functools.partial(template_render, newsletter=newsletter, language=language)
    memo = _merges_in_batch.get()
    # What differs from person to person: the strings of the context and the profile's.
    person = {name: value for name, value in context.items() if isinstance(value, str)}
    person["profile.email"], person["profile.name"] = profile.email, profile.name
    constants = tuple(
        sorted(
            (name, repr(value))
            for name, value in context.items()
            if name not in person and name not in {"profile", "newsletter"}
        )
    )

    def part(name, finish=_unchanged):
        def render_direct():
            return finish(render(name=name, context=context))

        def render_with(values, probe):
            stand_in = mailmerge.StandIn(
                {"email": values["profile.email"], "name": values["profile.name"]}, probe
            )
            merged = {key: values.get(key, value) for key, value in context.items()}
            return render(name=name, context={**merged, "profile": stand_in})

        if memo is None or not all(isinstance(value, str) for value in person.values()):
            return render_direct()
        return mailmerge.merged(
            memo,
            key=(name, getattr(newsletter, "pk", None), language, constants),
            values=person,
            render_with=render_with,
            finish=finish,
            render_direct=render_direct,
        )

    return part


def _links(newsletter):
    """The newsletter's ``PersonalLinks``: its URL patterns reversed once per batch."""
    memo = _merges_in_batch.get()
    if memo is None:
        return PersonalLinks(newsletter=newsletter)
    key = ("links", newsletter.pk)
    if key not in memo:
        memo[key] = PersonalLinks(newsletter=newsletter)
    return memo[key]


def _letterhead(*, subject, newsletter):
    """A ``Letterhead``, made once per subject and newsletter within a batch."""
    memo = _merges_in_batch.get()
    if memo is None:
        return Letterhead(subject=subject, newsletter=newsletter)
    key = ("letterhead", subject, getattr(newsletter, "pk", None))
    if key not in memo:
        memo[key] = Letterhead(subject=subject, newsletter=newsletter)
    return memo[key]


def _refusal(error):
    """The error a refused message's call fails with: permanent if every code is 5xx."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return PermanentFailure(f"recipient refused: {error.recipients}")
    return error


def _send(message):
    """Send ``message``; a refusal of its recipient is permanent, anything else retried."""
    try:
        message_send(message)
    except smtplib.SMTPRecipientsRefused as error:
        refusal = _refusal(error)
        if refusal is not error:
            raise refusal from error
        raise


def emails_send(builders):
    """Build and send a batch of subscription emails over one connection to the mailer.

    ``builders`` maps a call's idempotency key to a function returning its
    ``Message`` (or ``None``: nothing to send any more). Returns the errors of the
    calls that failed, by key: a message that cannot be built fails alone; a
    recipient refused with 5xx fails permanently (``PermanentFailure``), any other
    refusal is retried; a lost connection fails the messages not yet sent.
    """
    failures = {}
    messages = {}
    # A batch looks each stored template up once: they are the same for every person.
    memo = _stored_in_batch.set({})
    merges = _merges_in_batch.set({})
    try:
        for key, build in builders.items():
            try:
                message = build()
            except Exception as error:
                failures[key] = error
                continue
            if message is not None:
                messages[key] = message
    finally:
        _merges_in_batch.reset(merges)
        _stored_in_batch.reset(memo)
    if not messages:
        return failures
    mailer = mailers.default
    try:
        mailer.open()
    except (smtplib.SMTPException, OSError) as error:
        return {**failures, **dict.fromkeys(messages, error)}
    # One transport per letterhead (its envelope sender prepared once, its DKIM signer).
    transports = {}
    try:
        pending = list(messages)
        while pending:
            key = pending.pop(0)
            letterhead = messages[key].letterhead
            transport = transports.get(id(letterhead))
            if transport is None:
                transport = transports[id(letterhead)] = Transport(letterhead, mailer=mailer)
            try:
                transport.send(messages[key])
            except smtplib.SMTPServerDisconnected as error:
                failures.update(dict.fromkeys([key, *pending], error))
                break
            except smtplib.SMTPException as error:
                # (A subclass of OSError: this clause comes first.) The server
                # refused this message; the connection goes on with the next.
                failures[key] = _refusal(error)
            except OSError as error:
                failures.update(dict.fromkeys([key, *pending], error))
                break
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            mailer.close()
    return failures


def confirmation_message(*, subscription, idempotency_key):
    """Return the email with the link that confirms a pending ``subscription``."""
    profile, newsletter = subscription.profile, subscription.newsletter
    context = {
        "confirmation_url": _links(newsletter).confirmation_url(profile=profile),
        "expires_days": conf.CONFIRMATION_MAX_AGE_SECONDS // 86400,
    }
    return message_build(
        kind="confirmation",
        profile=profile,
        newsletter=newsletter,
        context=context,
        idempotency_key=idempotency_key,
    )


def welcome_message(*, subscription, idempotency_key):
    """Return the welcome email of a newly active ``subscription``."""
    return message_build(
        kind="welcome",
        profile=subscription.profile,
        newsletter=subscription.newsletter,
        context={},
        idempotency_key=idempotency_key,
    )


def preferences_link_message(*, profile, idempotency_key):
    """Return the email with ``profile``'s link to their preference center."""
    context = {"expires_days": conf.PREFERENCES_MAX_AGE_SECONDS // 86400}
    return message_build(
        kind="preferences_link",
        profile=profile,
        newsletter=None,
        context=context,
        idempotency_key=idempotency_key,
        language=profile_email_language(profile),
    )


def email_confirmation_send(*, subscription, idempotency_key):
    """Email the link that confirms a pending ``subscription``."""
    _send(confirmation_message(subscription=subscription, idempotency_key=idempotency_key))


def email_welcome_send(*, subscription, idempotency_key):
    """Email the welcome of a newly active ``subscription``."""
    _send(welcome_message(subscription=subscription, idempotency_key=idempotency_key))


def email_preferences_link_send(*, profile, idempotency_key):
    """Email ``profile`` the link to their preference center."""
    _send(preferences_link_message(profile=profile, idempotency_key=idempotency_key))
