"""The signed links in emails and pages: paths, and absolute URLs under ``SITE_URL``."""

from django.conf import settings
from django.urls import reverse

from signalpost.newsletters import tokens


def absolute(path):
    return f"{settings.SITE_URL}{path}"


def confirmation_path(*, profile, newsletter):
    token = tokens.token_make(purpose=tokens.CONFIRM, profile=profile, newsletter=newsletter)
    return reverse("confirm", args=[newsletter.slug, token])


def unsubscribe_path(*, profile, newsletter):
    token = tokens.token_make(purpose=tokens.UNSUBSCRIBE, profile=profile, newsletter=newsletter)
    return reverse("one_click_unsubscribe", args=[newsletter.slug, token])


def preferences_path(*, profile):
    token = tokens.token_make(purpose=tokens.PREFERENCES, profile=profile)
    return reverse("preferences", args=[token])
