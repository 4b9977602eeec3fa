"""The public pages. Each view translates the request and calls one service."""

import ipaddress

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from signalpost.accounts.services import EMAIL_MAX_LENGTH
from signalpost.newsletters.forms import SubscribeForm, UnsubscribeForm
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.selectors import topics_with_public_newsletters
from signalpost.newsletters.services import ConsentEvidence, subscribe, unsubscribe

PREFILL_MAX_LENGTH = EMAIL_MAX_LENGTH


def client_ip(request):
    """Return the client's IP address, or ``None`` when it is not one."""
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return None


def prefill(request):
    """Return form initial values from the tutorial's query parameters."""
    return {
        "user_email": request.GET.get("user_email", "")[:PREFILL_MAX_LENGTH],
        "newsletter": request.GET.get("newsletter", "")[:PREFILL_MAX_LENGTH],
    }


@require_GET
def home(request):
    topics, untopical = topics_with_public_newsletters()
    return render(request, "newsletters/home.html", {"topics": topics, "untopical": untopical})


@require_http_methods(["GET", "POST"])
def subscribe_page(request):
    if request.method == "GET":
        form = SubscribeForm(initial=prefill(request))
        return render(request, "newsletters/subscribe.html", {"form": form})
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return render(request, "newsletters/subscribe.html", {"form": form}, status=400)
    newsletter = form.cleaned_data["newsletter"]
    subscribe(
        email=form.cleaned_data["user_email"],
        newsletter=newsletter,
        name=form.cleaned_data["name"],
        source=Subscription.Source.FORM,
        consent=ConsentEvidence(
            at=timezone.now(),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ),
    )
    # The answer depends only on what was submitted, never on who was subscribed.
    return render(
        request,
        "newsletters/subscribe_done.html",
        {
            "user_email": form.cleaned_data["user_email"],
            "newsletter": newsletter,
            "needs_confirmation": newsletter.opt_in == Newsletter.OptIn.DOUBLE,
        },
    )


@require_http_methods(["GET", "POST"])
def unsubscribe_page(request):
    if request.method == "GET":
        form = UnsubscribeForm(initial=prefill(request))
        return render(request, "newsletters/unsubscribe.html", {"form": form})
    form = UnsubscribeForm(request.POST)
    if not form.is_valid():
        return render(request, "newsletters/unsubscribe.html", {"form": form}, status=400)
    unsubscribe(
        email=form.cleaned_data["user_email"],
        newsletter=form.cleaned_data["newsletter"],
        reason="unsubscribe form",
    )
    return render(
        request,
        "newsletters/unsubscribe_done.html",
        {
            "user_email": form.cleaned_data["user_email"],
            "newsletter": form.cleaned_data["newsletter"],
        },
    )
