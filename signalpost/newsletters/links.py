"""The signed links in emails and pages: paths, and absolute URLs under ``SITE_URL``."""

from django.urls import reverse

from signalpost.conf import conf
from signalpost.newsletters import tokens


def absolute(path):
    return f"{conf.SITE_URL}{path}"


def confirmation_path(*, profile, newsletter):
    token = tokens.token_make(purpose=tokens.CONFIRM, profile=profile, newsletter=newsletter)
    return reverse("signalpost:confirm", args=[newsletter.slug, token])


def unsubscribe_path(*, profile, newsletter):
    token = tokens.token_make(purpose=tokens.UNSUBSCRIBE, profile=profile, newsletter=newsletter)
    return reverse("signalpost:one_click_unsubscribe", args=[newsletter.slug, token])


def preferences_path(*, profile):
    token = tokens.token_make(purpose=tokens.PREFERENCES, profile=profile)
    return reverse("signalpost:preferences", args=[token])


# Tokens are URL-safe base64 and ":", which reverse() leaves as they are.
TOKEN_SLOT = "signalpost-token-slot"


class PersonalLinks:
    """Each recipient's unsubscribe and preference URLs, reversing the URL patterns once.

    For sending one issue, or a batch of subscription emails, to many people: the same
    URLs ``unsubscribe_path``, ``preferences_path`` and ``confirmation_path`` give, with
    ``reverse()`` run per batch instead of for each message.
    """

    def __init__(self, *, newsletter):
        self.newsletter = newsletter
        unsubscribe = absolute(
            reverse("signalpost:one_click_unsubscribe", args=[newsletter.slug, TOKEN_SLOT])
        )
        preferences = absolute(reverse("signalpost:preferences", args=[TOKEN_SLOT]))
        confirmation = absolute(reverse("signalpost:confirm", args=[newsletter.slug, TOKEN_SLOT]))
        self.unsubscribe_around = unsubscribe.rsplit(TOKEN_SLOT, 1)
        self.preferences_around = preferences.rsplit(TOKEN_SLOT, 1)
        self.confirmation_around = confirmation.rsplit(TOKEN_SLOT, 1)
        self._unsubscribe_tokens = tokens.TokenMaker(
            purpose=tokens.UNSUBSCRIBE, newsletter=newsletter
        )
        self._preferences_tokens = tokens.TokenMaker(purpose=tokens.PREFERENCES)
        self._confirmation_tokens = tokens.TokenMaker(purpose=tokens.CONFIRM, newsletter=newsletter)

    def unsubscribe_url(self, *, profile):
        return self._unsubscribe_tokens.make(profile=profile).join(self.unsubscribe_around)

    def preferences_url(self, *, profile):
        return self._preferences_tokens.make(profile=profile).join(self.preferences_around)

    def confirmation_url(self, *, profile):
        return self._confirmation_tokens.make(profile=profile).join(self.confirmation_around)
