"""The public pages. Each view translates the request and calls one service."""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from signalpost.accounts.models import Profile
from signalpost.accounts.services import EMAIL_MAX_LENGTH
from signalpost.conf import conf
from signalpost.newsletters import embedding, tokens
from signalpost.newsletters.answers import answer_render
from signalpost.newsletters.forms import (
    AccountNewsletterForm,
    EmbeddedSubscribeForm,
    PreferencesForm,
    PreferencesLinkForm,
    SubscribeForm,
    UnsubscribeForm,
)
from signalpost.newsletters.languages import page_render
from signalpost.newsletters.links import preferences_path
from signalpost.newsletters.models import Newsletter
from signalpost.newsletters.selectors import (
    attributes_editable_by,
    newsletter_by_slug,
    newsletters_for_preferences,
    newsletters_subscribed,
    subscription_of,
    topics_with_public_newsletters,
)
from signalpost.newsletters.services import (
    ConsentEvidence,
    Source,
    preferences_update,
    subscription_confirm,
    subscription_end,
    user_subscribe,
    user_unsubscribe,
)
from signalpost.newsletters.tasks import (
    preferences_link_request_queue,
    subscribe_queue,
    unsubscribe_queue,
)
from signalpost.pages import render_page
from signalpost.privacy.services import profile_export
from signalpost.ratelimit import client_ip, client_rate_allows, rate_limit_allows

PREFILL_MAX_LENGTH = EMAIL_MAX_LENGTH
# A newsletter's slug (a SlugField of 60): anything else names none, and never reaches SQL.
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")


def consent_from(request):
    return ConsentEvidence(
        at=timezone.now(),
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


def prefill(request):
    """Return form initial values from the tutorial's query parameters."""
    return {
        "user_email": request.GET.get("user_email", "")[:PREFILL_MAX_LENGTH],
        "newsletter": request.GET.get("newsletter", "")[:PREFILL_MAX_LENGTH],
    }


def too_many_requests(request):
    response = render_page(request, "newsletters/too_many_requests.html", status=429)
    response["Retry-After"] = "3600"
    return response


def link_problem(request, *, problem, newsletter=None, purpose):
    """A friendly page for a link that cannot be used, with a way forward."""
    status = 410 if problem == "expired" else 400
    context = {"problem": problem, "newsletter": newsletter, "purpose": purpose}
    if purpose == "preferences":
        context["form"] = PreferencesLinkForm()
    return page_render(
        request, "newsletters/link_problem.html", context, newsletter=newsletter, status=status
    )


def read_link(request, *, token, purpose, max_age, newsletter=None):
    """Return ``(profile_id, None)`` for a usable link or ``(None, problem response)``."""
    page = {
        tokens.CONFIRM: "confirm",
        tokens.UNSUBSCRIBE: "unsubscribe",
        tokens.PREFERENCES: "preferences",
    }[purpose]
    try:
        profile_id, newsletter_id = tokens.token_read(token=token, purpose=purpose, max_age=max_age)
    except tokens.TokenExpired:
        return None, link_problem(request, problem="expired", newsletter=newsletter, purpose=page)
    except tokens.TokenInvalid:
        return None, link_problem(request, problem="invalid", newsletter=newsletter, purpose=page)
    if newsletter is not None and newsletter_id != newsletter.pk:
        return None, link_problem(request, problem="mismatch", newsletter=newsletter, purpose=page)
    return profile_id, None


@require_safe
def home(request):
    topics, untopical = topics_with_public_newsletters()
    context = {"topics": topics, "untopical": untopical, "admin_url": _admin_url()}
    return render_page(request, "newsletters/home.html", context)


def _admin_url():
    """Where staff create newsletters: the admin wherever the project put it, if anywhere."""
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return ""


def subscribe_submitted(request, *, form, newsletter, source):
    """Queue the subscription a valid subscribe ``form`` asks for, unless it should not be.

    A bot (honeypot) or an address submitted too often gets the same answer as anyone
    else and causes nothing. Queued for any address: the same work, so the same time,
    known or not. The site's form and the embedded one both come through here.
    """
    email = form.cleaned_data["user_email"]
    if not form.is_bot() and rate_limit_allows(scope="subscribe_address", key=email):
        subscribe_queue(
            email=email,
            newsletter=newsletter,
            name=form.cleaned_data["name"],
            consent=consent_from(request),
            source=source,
        )


@require_http_methods(["GET", "HEAD", "POST"])
def subscribe_page(request):
    if request.method != "POST":
        form = SubscribeForm(initial=prefill(request))
        return render_page(request, "newsletters/subscribe.html", {"form": form})
    if not client_rate_allows(request, scope="subscribe_ip"):
        return too_many_requests(request)
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return render_page(request, "newsletters/subscribe.html", {"form": form}, status=400)
    email = form.cleaned_data["user_email"]
    newsletter = form.cleaned_data["newsletter"]
    subscribe_submitted(request, form=form, newsletter=newsletter, source=Source.FORM)
    # The answer depends only on what was submitted, never on who was subscribed.
    return answer_render(
        request,
        "newsletters/subscribe_done.html",
        {
            "newsletter": newsletter,
            "needs_confirmation": newsletter.opt_in == Newsletter.OptIn.DOUBLE,
        },
        personal={"user_email": email},
    )


@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_page(request):
    if request.method != "POST":
        form = UnsubscribeForm(initial=prefill(request))
        return render_page(request, "newsletters/unsubscribe.html", {"form": form})
    # The form ends anyone's subscription given the address (the tutorial's form): the
    # limit keeps one client from unsubscribing a list of addresses.
    if not client_rate_allows(request, scope="unsubscribe_ip"):
        return too_many_requests(request)
    form = UnsubscribeForm(request.POST)
    if not form.is_valid():
        return render_page(request, "newsletters/unsubscribe.html", {"form": form}, status=400)
    # Queued for any address, so that the answer comes as fast for a stranger.
    unsubscribe_queue(
        email=form.cleaned_data["user_email"],
        newsletter=form.cleaned_data["newsletter"],
        reason="unsubscribe form",
    )
    context = {
        "user_email": form.cleaned_data["user_email"],
        "newsletter": form.cleaned_data["newsletter"],
    }
    return render_page(request, "newsletters/unsubscribe_done.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
def confirm_page(request, slug, token):
    """GET shows a button (link scanners change nothing); POST confirms."""
    newsletter = get_object_or_404(Newsletter, slug=slug)
    profile_id, problem = read_link(
        request,
        token=token,
        purpose=tokens.CONFIRM,
        max_age=conf.CONFIRMATION_MAX_AGE_SECONDS,
        newsletter=newsletter,
    )
    if problem:
        return problem
    subscription = subscription_of(profile_id=profile_id, newsletter=newsletter)
    if subscription is None:
        return link_problem(request, problem="invalid", newsletter=newsletter, purpose="confirm")
    if request.method == "POST":
        subscription = subscription_confirm(subscription=subscription)
    context = {
        "subscription": subscription,
        "newsletter": newsletter,
        "confirmed_now": request.method == "POST",
        "preferences_url": preferences_path(profile=subscription.profile),
    }
    return page_render(request, "newsletters/confirm.html", context, newsletter=newsletter)


@csrf_exempt  # RFC 8058: mail providers POST without cookies; the signed token authenticates.
@require_http_methods(["GET", "HEAD", "POST"])
def one_click_unsubscribe(request, slug, token):
    newsletter = get_object_or_404(Newsletter, slug=slug)
    profile_id, problem = read_link(
        request, token=token, purpose=tokens.UNSUBSCRIBE, max_age=None, newsletter=newsletter
    )
    if problem:
        return problem
    profile = Profile.objects.filter(pk=profile_id).first()
    if request.method == "POST" and profile is not None:
        subscription_end(profile=profile, newsletter=newsletter, reason="one-click unsubscribe")
    context = {
        "newsletter": newsletter,
        "profile": profile,
        "done": request.method == "POST",
        "preferences_url": preferences_path(profile=profile) if profile else None,
    }
    return page_render(
        request, "newsletters/one_click_unsubscribe.html", context, newsletter=newsletter
    )


@require_http_methods(["GET", "HEAD", "POST"])
def preferences_request_page(request):
    if request.method != "POST":
        form = PreferencesLinkForm(initial=prefill(request))
        return render_page(request, "newsletters/preferences_request.html", {"form": form})
    if not client_rate_allows(request, scope="subscribe_ip"):
        return too_many_requests(request)
    form = PreferencesLinkForm(request.POST)
    if not form.is_valid():
        return render_page(
            request, "newsletters/preferences_request.html", {"form": form}, status=400
        )
    email = form.cleaned_data["user_email"]
    if not form.is_bot() and rate_limit_allows(scope="preferences_address", key=email):
        preferences_link_request_queue(email=email)
    return render_page(request, "newsletters/preferences_request_done.html", {"user_email": email})


def preferences_link_owner(request, token):
    """Return ``(profile, None)`` for a usable preference-center link, else ``(None, page)``."""
    profile_id, problem = read_link(
        request,
        token=token,
        purpose=tokens.PREFERENCES,
        max_age=conf.PREFERENCES_MAX_AGE_SECONDS,
    )
    if problem:
        return None, problem
    profile = Profile.objects.filter(pk=profile_id).first()
    if profile is None:
        return None, link_problem(request, problem="invalid", purpose="preferences")
    return profile, None


@require_http_methods(["GET", "HEAD", "POST"])
def preferences_page(request, token):
    profile, problem = preferences_link_owner(request, token)
    if problem:
        return problem
    choices = newsletters_for_preferences(profile=profile)
    attributes = attributes_editable_by(profile=profile)
    saved = None
    status = 200
    if request.method == "POST":
        form = PreferencesForm(request.POST, choices=choices, attributes=attributes)
        leave_all = "leave_all" in request.POST
        if leave_all or form.is_valid():
            name = form.cleaned_data.get("name", profile.name) if not leave_all else profile.name
            wanted = [] if leave_all else list(form.cleaned_data["newsletters"])
            joined, left = preferences_update(
                profile=profile,
                name=name,
                wanted_newsletters=wanted,
                consent=consent_from(request),
                attributes=None if leave_all else form.attribute_values(),
            )
            saved = {"joined": joined, "left": left, "left_everything": leave_all}
        else:
            status = 400
    if request.method != "POST" or saved:
        profile.refresh_from_db(fields=["attributes"])
        form = PreferencesForm(
            initial={
                "name": profile.name,
                "newsletters": newsletters_subscribed(profile=profile),
                **PreferencesForm.attribute_initial(attributes, profile.attributes),
            },
            choices=choices,
            attributes=attributes,
        )
    context = {
        "form": form,
        "profile": profile,
        "saved": saved,
        "token": token,
        "recorded": newsletters_subscribed(profile=profile),
    }
    return render_page(request, "newsletters/preferences.html", context, status=status)


@require_safe
def preferences_data_page(request, token):
    """Everything held about the link's owner, as a JSON download."""
    profile, problem = preferences_link_owner(request, token)
    if problem:
        return problem
    response = JsonResponse(profile_export(profile=profile), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="signalpost-my-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["POST"])
def account_newsletters_page(request):
    """A toggle of the "Your newsletters" component (``{% your_newsletters %}``) on the
    site's account page: the signed-in user joins or leaves one newsletter, then goes
    back to ``next``. Only ever their own subscriptions: who they are comes from the
    session, never from the form."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        context = {"problem": "signed_out"}
        return render_page(request, "newsletters/account_problem.html", context, status=403)
    if not client_rate_allows(request, scope="subscribe_ip"):
        return too_many_requests(request)
    form = AccountNewsletterForm(request.POST)
    if not form.is_valid():
        context = {"problem": "form", "form": form}
        return render_page(request, "newsletters/account_problem.html", context, status=400)
    newsletter = form.cleaned_data["newsletter"]
    if form.cleaned_data["action"] == AccountNewsletterForm.SUBSCRIBE:
        try:
            user_subscribe(user=user, newsletter=newsletter, consent=consent_from(request))
        except ValidationError as error:
            context = {"problem": "no_address", "message": error.messages[0]}
            return render_page(request, "newsletters/account_problem.html", context, status=400)
    else:
        user_unsubscribe(user=user, newsletter=newsletter)
    return HttpResponseRedirect(_next_or_home(request), status=303)


def _next_or_home(request):
    """The page the toggle came from (``next``) when it is this site's, else Signalpost's home."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("signalpost:home")


# ------------------------------------------------------------ the form on other websites

EMBED_PROBLEMS = {
    # problem -> (status, field, title, message); the message names the problem.
    "unknown": (
        404,
        "newsletter",
        _("No such newsletter"),
        _("newsletter: there is no public newsletter at this address."),
    ),
    "not_embeddable": (
        403,
        "newsletter",
        _("Not open to other websites"),
        _("newsletter: this newsletter does not take subscriptions from other websites."),
    ),
    "origin": (
        403,
        "origin",
        _("Not open to this website"),
        _(
            "origin: this newsletter does not take subscriptions from the page you came "
            "from. Subscribe on its own page instead."
        ),
    ),
    "rate": (
        429,
        None,
        _("Too many requests"),
        _("Too many subscription requests came from your network. Try again in an hour."),
    ),
}


def _wants_json(request):
    """Whether the embedded form's script sent ``request`` (it asks for JSON)."""
    return "application/json" in request.headers.get("Accept", "")


def _embed_problem(request, problem, *, framed):
    status, field, title, message = EMBED_PROBLEMS[problem]
    if _wants_json(request):
        response = JsonResponse({"errors": [{"field": field, "message": str(message)}]})
        response.status_code = status
    else:
        context = {"title": title, "message": message, "base_template": _embed_base(framed)}
        response = render_page(request, "newsletters/embed_problem.html", context, status=status)
    if status == 429:
        response["Retry-After"] = "3600"
    return response


def _embed_base(framed):
    return "newsletters/embed_base.html" if framed else conf.BASE_TEMPLATE


def _embed_form_page(request, *, newsletter, form, framed, status=200):
    context = {
        "newsletter": newsletter,
        "form": form,
        "framed": framed,
        "base_template": _embed_base(framed),
    }
    return render_page(request, "newsletters/embed_form.html", context, status=status)


def _embed_answer(request, *, newsletter, standing, origin, framed):
    """The answer to a POST (or preflight) to ``newsletter``'s embedded form from
    ``origin``, which stands as ``standing`` (``embedding.origin_standing``)."""
    if request.method == "OPTIONS":
        # A preflight: the script's own requests need none, but a page may add headers.
        response = HttpResponse(status=204)
        if standing == embedding.LISTED:
            response["Access-Control-Allow-Methods"] = "POST"
            response["Access-Control-Allow-Headers"] = "Accept, Content-Type"
            response["Access-Control-Max-Age"] = "600"
        return response
    if standing == embedding.REFUSED:
        return _embed_problem(request, "origin", framed=framed)
    if not client_rate_allows(request, scope="subscribe_ip"):
        return _embed_problem(request, "rate", framed=framed)
    form = EmbeddedSubscribeForm(request.POST)
    if not form.is_valid():
        if _wants_json(request):
            errors = [
                {"field": field, "message": str(message)}
                for field, messages in form.errors.items()
                for message in messages
            ]
            return JsonResponse({"errors": errors}, status=400)
        return _embed_form_page(
            request, newsletter=newsletter, form=form, framed=framed, status=400
        )
    subscribe_submitted(request, form=form, newsletter=newsletter, source=Source.EMBED)
    email = form.cleaned_data["user_email"]
    # The answer depends only on what was submitted, never on who was subscribed.
    message = _(
        "We sent a confirmation link to %(email)s. Your subscription to %(name)s starts "
        "when you follow it."
    ) % {"email": email, "name": newsletter.name}
    if _wants_json(request):
        return JsonResponse({"status": "confirmation_sent", "message": message})
    context = {
        "user_email": email,
        "newsletter": newsletter,
        "base_template": _embed_base(framed),
    }
    if standing == embedding.LISTED and origin is not None:
        context["back_url"] = embedding.page_back(request, origin=origin)
        context["back_host"] = urlsplit(origin).netloc
    return render_page(request, "newsletters/embed_done.html", context)


@csrf_exempt  # Another website's form cannot carry this site's CSRF token; no cookie is read.
@xframe_options_exempt  # Who may frame these pages is the CSP's frame-ancestors, per newsletter.
@require_http_methods(["GET", "HEAD", "POST", "OPTIONS"])
def embed_subscribe(request, slug):
    """The subscribe form other websites embed (docs/subscribers.md#embedding).

    GET: the form alone, for an ``<iframe>`` on the newsletter's listed sites. POST:
    subscribe, always by double opt-in, with every protection of ``/subscribe/``
    (rate limits per IP and address, the honeypot, one answer for everyone). The
    answer is a page, or JSON for the script (``Accept: application/json``), with
    CORS headers for listed origins only.
    """
    # The iframe's page, and what its form's POST gets back: without the site's navigation.
    framed = request.method in {"GET", "HEAD"} or request.POST.get("frame") == "1"
    newsletter = newsletter_by_slug(slug, public_only=True) if SLUG.fullmatch(slug) else None
    if newsletter is None:
        response = _embed_problem(request, "unknown", framed=framed)
    elif not newsletter.embed_allowed:
        response = _embed_problem(request, "not_embeddable", framed=framed)
    elif request.method in {"GET", "HEAD"}:
        response = _embed_form_page(
            request, newsletter=newsletter, form=EmbeddedSubscribeForm(), framed=True
        )
    else:
        origin = embedding.request_origin(request)
        standing = embedding.origin_standing(request, newsletter=newsletter, origin=origin)
        response = _embed_answer(
            request, newsletter=newsletter, standing=standing, origin=origin, framed=framed
        )
        for header, value in embedding.cors_headers(origin=origin, standing=standing).items():
            response[header] = value
    if newsletter is not None:
        response._csp_config = embedding.frame_policy(newsletter)
    patch_vary_headers(response, ["Origin", "Accept"])
    response["Cache-Control"] = "no-store"
    return response
