"""The language a subscriber reads: a newsletter's own, the request's, or the site's.

A newsletter with a ``language`` sends every email and shows its pages (its page and
archive, its issues, its confirmation and one-click unsubscribe pages) in it; one
without follows the site: ``settings.LANGUAGE_CODE`` for emails, the reader's choice
for pages. Emails are rendered by workers, whose own active language is whatever the
last task left: each render names its language explicitly (``email_language``).
"""

from contextlib import AbstractContextManager
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from signalpost.pages import render_page


def language_choices() -> list[tuple[str, str]]:
    """The languages a newsletter may be written in: ``settings.LANGUAGES``."""
    return list(settings.LANGUAGES)


def language_supported(code: str) -> str | None:
    """Return the code of ``settings.LANGUAGES`` that ``code`` names, or ``None``."""
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


def newsletter_language(newsletter: Any) -> str | None:
    """``newsletter``'s own language, or ``None`` when it has none (or one no longer
    in ``settings.LANGUAGES``)."""
    code = getattr(newsletter, "language", "") if newsletter is not None else ""
    return language_supported(code) if code else None


def email_language(newsletter: Any) -> str:
    """The language of an email about ``newsletter`` (``None``: about none): its own,
    else the site's default."""
    return newsletter_language(newsletter) or settings.LANGUAGE_CODE


def email_language_override(newsletter: Any) -> AbstractContextManager[None]:
    """Render what is inside in the language of emails about ``newsletter``."""
    return translation.override(email_language(newsletter))


def page_render(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any],
    *,
    newsletter: Any,
    status: int = 200,
) -> HttpResponse:
    """``render()`` a page about ``newsletter`` in its language (its ``Content-Language``
    too); without one, in the request's, as every other page."""
    language = newsletter_language(newsletter)
    if language is None:
        return render_page(request, template_name, context, status=status)
    with translation.override(language):
        response = render_page(request, template_name, context, status=status)
    response.headers["Content-Language"] = language
    return response
