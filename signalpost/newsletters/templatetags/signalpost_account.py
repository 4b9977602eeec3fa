"""``{% load signalpost_account %}{% your_newsletters %}``: the "Your newsletters" component
for a host site's account page (docs/integrate.md). Each toggle is a POST form with the
CSRF token, so it works without JavaScript."""

from django import template
from django.middleware.csrf import get_token
from django.urls import reverse

from signalpost.newsletters.selectors import newsletters_for_user

register = template.Library()


@register.inclusion_tag("signalpost/your_newsletters.html", takes_context=True)
def your_newsletters(context):
    """The signed-in user's newsletters, each with a subscribe or unsubscribe button."""
    request = context["request"]
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated)
    return {
        "signed_in": signed_in,
        "rows": newsletters_for_user(user=user) if signed_in else [],
        "action": reverse("signalpost:account_newsletters"),
        "next": request.get_full_path(),
        "csrf_token": get_token(request),
    }
