"""The REST API, /api/v1/. Endpoints translate JSON and call the same services as the pages."""

import enum
import io
import re
from datetime import UTC, datetime
from email.utils import format_datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Count, ProtectedError, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from ninja import NinjaAPI, Path, Router, Status, Swagger
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.pagination import PageNumberPagination, paginate
from ninja.security import HttpBearer

from signalpost.accounts.selectors import profile_by_email
from signalpost.accounts.services import (
    email_normalize,
    profile_attributes_set,
    profile_tags_set,
    profile_update,
)
from signalpost.api import schemas
from signalpost.api.parser import BodyRefused, StrictJSONParser
from signalpost.api.tokens import api_token_authenticate
from signalpost.automations.models import Automation, Enrollment
from signalpost.automations.selectors import automation_funnel, enrollments_of
from signalpost.automations.services import (
    automation_activate,
    automation_create,
    automation_delete,
    automation_pause,
    automation_update,
)
from signalpost.conf import conf
from signalpost.engagement.selectors import issue_report
from signalpost.newsletters.formats import FORMAT_NAMES
from signalpost.newsletters.imports import ImportFileError, subscribers_import
from signalpost.newsletters.models import Newsletter, Segment, Subscription
from signalpost.newsletters.selectors import segment_count
from signalpost.newsletters.services import (
    ConsentEvidence,
    segment_create,
    segment_delete,
    segment_update,
    subscribe,
    unsubscribe,
)
from signalpost.privacy.services import profile_erase, profile_export
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issue_progress
from signalpost.publishing.services import (
    EDITABLE,
    SendStateRefused,
    issue_cancel,
    issue_create,
    issue_pause,
    issue_resume,
    issue_segment_set,
    issue_send,
    issue_update,
)
from signalpost.ratelimit import client_ip, client_rate_allows, rate_limit_allows
from signalpost.webhooks.models import WebhookEndpoint
from signalpost.webhooks.services import endpoint_create, endpoint_delete, endpoint_secret_rotate

ERRORS = {400: schemas.ErrorOut, 401: schemas.ErrorOut, 413: schemas.ErrorOut}
NOT_FOUND = {404: schemas.ErrorOut}
LIMITED = {429: schemas.ErrorOut}
STATE = {409: schemas.ErrorOut}


class TokenAuth(HttpBearer):
    def authenticate(self, request, token):
        api_token = api_token_authenticate(token)
        if api_token is not None:
            request.api_token = api_token
        return api_token


api = NinjaAPI(
    title="Signalpost API",
    version="1",
    description="Newsletters, subscriptions, profiles, issues and webhooks. "
    "Authenticate with `Authorization: Bearer sp_...` (tokens: admin or "
    "`manage.py create_api_token`). Errors are JSON naming the field.",
    auth=TokenAuth(),
    urls_namespace="api",
    parser=StrictJSONParser(),
    # Swagger UI from ninja's own static files ('ninja' is an installed app): the docs
    # page asks nothing of any other host.
    docs=Swagger(),
)


def error(status, message, field=None):
    return Status(status, {"errors": [{"field": field, "message": message}]})


@api.exception_handler(NinjaValidationError)
def invalid_input(request, exc):
    errors = []
    for item in exc.errors:
        location = [str(part) for part in item.get("loc", []) if part not in {"body", "payload"}]
        errors.append({"field": ".".join(location) or None, "message": item.get("msg", "")})
    return api.create_response(request, {"errors": errors}, status=400)


@api.exception_handler(DjangoValidationError)
def refused_by_service(request, exc):
    if hasattr(exc, "message_dict"):
        errors = [
            {"field": field, "message": message}
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    else:
        errors = [{"field": None, "message": message} for message in exc.messages]
    return api.create_response(request, {"errors": errors}, status=400)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    message = "Send a valid API token: Authorization: Bearer sp_..."
    return api.create_response(
        request, {"errors": [{"field": None, "message": message}]}, status=401
    )


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(
        request, {"errors": [{"field": None, "message": "Not found."}]}, status=404
    )


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc):
    message = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."
    return api.create_response(
        request, {"errors": [{"field": None, "message": message}]}, status=413
    )


@api.exception_handler(HttpError)
def http_error(request, exc):
    field, message = None, str(exc.message)
    if isinstance(exc.__cause__, BodyRefused):
        # ninja says only "Cannot parse request body"; the parser said what and where.
        field, message = exc.__cause__.field, exc.__cause__.message
    return api.create_response(
        request, {"errors": [{"field": field, "message": message}]}, status=exc.status_code
    )


SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")
ID = Path(..., ge=1, le=2**63 - 1)


def newsletter_or_404(slug, *, queryset=None):
    """Return the newsletter named ``slug``; a 404 naming the field when there is none."""
    queryset = queryset if queryset is not None else Newsletter.objects.all()
    newsletter = queryset.filter(slug=slug).first() if SLUG.fullmatch(slug) else None
    if newsletter is None:
        raise HttpError(404, "There is no such newsletter.")
    return newsletter


def newsletter_out(newsletter):
    return {
        "slug": newsletter.slug,
        "name": newsletter.name,
        "description": newsletter.description,
        "topics": [topic.name for topic in newsletter.topics.all()],
        "opt_in": newsletter.opt_in,
        "is_public": newsletter.is_public,
        "language": newsletter.language,
        "active_subscribers": newsletter.active_subscribers,
    }


def newsletters_with_counts():
    return Newsletter.objects.prefetch_related("topics").annotate(
        active_subscribers=Count("subscriptions", filter=Q(subscriptions__status="active"))
    )


newsletters = Router(tags=["newsletters"])


@newsletters.get("", response={200: list[schemas.NewsletterOut], **ERRORS})
@paginate(PageNumberPagination, page_size=50)
def newsletter_list(request):
    return [newsletter_out(newsletter) for newsletter in newsletters_with_counts().order_by("slug")]


@newsletters.get("/{slug}", response={200: schemas.NewsletterOut, **ERRORS, **NOT_FOUND})
def newsletter_read(request, slug: str):
    return newsletter_out(newsletter_or_404(slug, queryset=newsletters_with_counts()))


# Actions on one person take the address in the JSON body: a URL path ends up in
# access logs, proxies' logs and browser histories, which an erasure cannot reach.
# The old paths naming the address keep working until PERSON_IN_PATH_SUNSET.
PERSON_IN_PATH_DEPRECATED = datetime(2026, 12, 2, tzinfo=UTC)
PERSON_IN_PATH_SUNSET = datetime(2027, 6, 30, tzinfo=UTC)


def _person_in_path(successor):
    """The OpenAPI marks of an old path that names a person; ``successor`` replaces it."""
    return {
        "deprecated": True,
        "description": "Deprecated: the address in the path ends up in access logs. Use "
        f"POST {successor} with the address in the body; this path goes on "
        f"{PERSON_IN_PATH_SUNSET:%Y-%m-%d}.",
    }


def person_in_path_deprecated(response, *, successor):
    """Mark an answer of an old path that names a person (RFC 9745, RFC 8594)."""
    response["Deprecation"] = f"@{int(PERSON_IN_PATH_DEPRECATED.timestamp())}"
    response["Sunset"] = format_datetime(PERSON_IN_PATH_SUNSET, usegmt=True)
    # Wherever the project mounted the API (a host site: under its own prefix).
    root = reverse("api:api-root").rstrip("/")
    response["Link"] = f'<{root}{successor}>; rel="successor-version"'


subscriptions = Router(tags=["subscriptions"])
ACCEPTED = "Subscriptions are processed; the answer is the same for every address."


@subscriptions.post("", response={202: schemas.AcceptedOut, **ERRORS, **NOT_FOUND, **LIMITED})
def subscription_create(request, payload: schemas.SubscriptionIn):
    """Subscribe an address, as the form does (double opt-in sends a confirmation)."""
    newsletter = newsletter_or_404(payload.newsletter)
    if not client_rate_allows(request, scope="subscribe_ip"):
        return error(429, "Too many requests from this address; try again later.")
    email = email_or_400(payload.email)
    if rate_limit_allows(scope="subscribe_address", key=email):
        subscribe(
            email=email,
            newsletter=newsletter,
            name=payload.name,
            source=Subscription.Source.API,
            consent=ConsentEvidence(
                at=timezone.now(),
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            ),
        )
    return Status(202, {"status": "accepted", "detail": ACCEPTED})


@subscriptions.post("/unsubscribe", response={202: schemas.AcceptedOut, **ERRORS, **NOT_FOUND})
def subscription_end_by_body(request, payload: schemas.UnsubscribeIn):
    """Unsubscribe the address in the body; the answer is the same whether or not it was
    subscribed."""
    found = newsletter_or_404(payload.newsletter)
    unsubscribe(email=email_or_400(payload.email), newsletter=found, reason="api")
    return Status(202, {"status": "accepted", "detail": ACCEPTED})


@subscriptions.delete(
    "/{newsletter}/{email}",
    response={202: schemas.AcceptedOut, **ERRORS, **NOT_FOUND},
    **_person_in_path("/subscriptions/unsubscribe"),
)
def subscription_delete(request, response: HttpResponse, newsletter: str, email: str):
    """Unsubscribe an address; the answer is the same whether or not it was subscribed."""
    person_in_path_deprecated(response, successor="/subscriptions/unsubscribe")
    found = newsletter_or_404(newsletter)
    email_or_400(email)
    unsubscribe(email=email, newsletter=found, reason="api")
    return Status(202, {"status": "accepted", "detail": ACCEPTED})


def email_or_400(email):
    try:
        return email_normalize(email)
    except DjangoValidationError as exc:
        raise DjangoValidationError({"email": exc.messages}) from exc


profiles = Router(tags=["profiles"])


def profile_or_404(email):
    profile = profile_by_email(email=email)
    if profile is None:
        raise HttpError(404, "There is no profile with that email address.")
    return profile


def profile_out(profile):
    return {
        "email": profile.email,
        "name": profile.name,
        "attributes": profile.attributes,
        "tags": sorted(profile.tags.values_list("name", flat=True)),
        "created_at": profile.created_at,
        "subscriptions": [
            {
                "newsletter": subscription.newsletter.slug,
                "status": subscription.status,
                "source": subscription.source,
                "subscribed_at": subscription.subscribed_at,
                "unsubscribed_at": subscription.unsubscribed_at,
            }
            for subscription in profile.subscription_records.select_related("newsletter")
        ],
    }


def profile_by_body_or_404(payload):
    return profile_or_404(email_or_400(payload.email))


@profiles.post("/lookup", response={200: schemas.ProfileOut, **ERRORS, **NOT_FOUND})
def profile_lookup(request, payload: schemas.PersonIn):
    """Read the profile of the address in the body."""
    return profile_out(profile_by_body_or_404(payload))


@profiles.post("/update", response={200: schemas.ProfileOut, **ERRORS, **NOT_FOUND})
def profile_change(request, payload: schemas.ProfileUpdateIn):
    """Change the name and/or replace the attributes of the address in the body."""
    return profile_out(profile_changes_apply(profile_by_body_or_404(payload), payload))


@profiles.post("/export", response={200: dict, **ERRORS, **NOT_FOUND})
def profile_export_by_body(request, payload: schemas.PersonIn):
    """Everything held about the address in the body (as the preference center's download)."""
    return profile_export(profile=profile_by_body_or_404(payload))


@profiles.post("/erase", response={200: schemas.ErasedOut, **ERRORS, **NOT_FOUND})
def profile_erase_by_body(request, payload: schemas.PersonIn):
    """Erase the profile of the address in the body: subscriptions, activity and name go,
    deliveries stay anonymised, and no copy of the address is left anywhere."""
    profile_erase(profile=profile_by_body_or_404(payload))
    return {"status": "erased"}


@transaction.atomic
def profile_changes_apply(profile, payload):
    """Apply the name, attributes and tags the body gives: all of them, or (400) none."""
    if payload.name is not None:
        profile = profile_update(profile=profile, name=payload.name)
    if payload.attributes is not None:
        profile = profile_attributes_set(
            profile=profile, attributes=payload.attributes, source="api"
        )
    if payload.tags is not None:
        profile = profile_tags_set(profile=profile, names=payload.tags, source="api")
    return profile


@profiles.get(
    "/{email}",
    response={200: schemas.ProfileOut, **ERRORS, **NOT_FOUND},
    **_person_in_path("/profiles/lookup"),
)
def profile_read(request, response: HttpResponse, email: str):
    person_in_path_deprecated(response, successor="/profiles/lookup")
    return profile_out(profile_or_404(email))


@profiles.patch(
    "/{email}",
    response={200: schemas.ProfileOut, **ERRORS, **NOT_FOUND},
    **_person_in_path("/profiles/update"),
)
def profile_patch(request, response: HttpResponse, email: str, payload: schemas.ProfileIn):
    person_in_path_deprecated(response, successor="/profiles/update")
    return profile_out(profile_changes_apply(profile_or_404(email), payload))


@profiles.get(
    "/{email}/export",
    response={200: dict, **ERRORS, **NOT_FOUND},
    **_person_in_path("/profiles/export"),
)
def profile_data_export(request, response: HttpResponse, email: str):
    person_in_path_deprecated(response, successor="/profiles/export")
    return profile_export(profile=profile_or_404(email))


@profiles.delete(
    "/{email}",
    response={200: schemas.ErasedOut, **ERRORS, **NOT_FOUND},
    **_person_in_path("/profiles/erase"),
)
def profile_data_erase(request, response: HttpResponse, email: str):
    person_in_path_deprecated(response, successor="/profiles/erase")
    profile_erase(profile=profile_or_404(email))
    return {"status": "erased"}


ImportFormatName = enum.Enum(  # type: ignore[misc]
    "ImportFormatName", {name: name for name in FORMAT_NAMES}, type=str
)
IMPORT_MAX_BYTES = conf.REQUEST_BODY_MAX_BYTES_BY_VIEW["api:subscribers_import_csv"]


@newsletters.post(
    "/{slug}/imports",
    response={200: schemas.ImportReportOut, **ERRORS, **NOT_FOUND},
    tags=["imports"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "CSV with an email column (optional: name, consent_at, consent_ip), "
            "or a Mailchimp, Substack, Buttondown or listmonk export (recognised by its "
            "columns, or named by `format`), at most 5 MB; use manage.py import_subscribers "
            "for bigger files.",
        }
    },
)
def subscribers_import_csv(
    request, slug: str, confirm: bool = False, format: ImportFormatName | None = None
):
    """Import subscribers from a small CSV; existing subscriptions are left as they are,
    suppressed addresses are skipped, and the export's unsubscribed, cleaned, bounced and
    complained addresses go on the suppression list. The answer names the format
    recognised (or given as `format`)."""
    newsletter = newsletter_or_404(slug)
    if len(request.body) > IMPORT_MAX_BYTES:
        raise HttpError(413, f"At most {IMPORT_MAX_BYTES:,} bytes; use import_subscribers.")
    try:
        report = subscribers_import(
            binary=io.BytesIO(request.body),
            newsletter=newsletter,
            confirm=confirm,
            format_name=format.value if format else None,
        )
    except ImportFileError as exc:
        raise DjangoValidationError({"file": [str(exc)]}) from exc
    return {
        "format": report.format,
        "rows": report.rows,
        "imported": report.imported,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "skipped": report.skipped,
        "suppressed": report.suppressed,
        "rejections": report.rejections,
        "skips": report.skips,
    }


issues = Router(tags=["issues"])


def issue_out(issue):
    return {
        "id": issue.pk,
        "newsletter": issue.newsletter.slug,
        "segment": issue.segment_id,
        "subject": issue.subject,
        "preview_text": issue.preview_text,
        "slug": issue.slug,
        "status": issue.status,
        "scheduled_at": issue.scheduled_at,
        "sent_at": issue.sent_at,
        "recipient_count": issue.recipient_count,
    }


@newsletters.post(
    "/{slug}/issues", response={201: schemas.IssueOut, **ERRORS, **NOT_FOUND}, tags=["issues"]
)
def issue_draft_create(request, slug: str, payload: schemas.IssueIn):
    """Create a draft issue of a newsletter."""
    newsletter = newsletter_or_404(slug)
    issue = issue_create(
        newsletter=newsletter,
        subject=payload.subject,
        body_markdown=payload.body_markdown,
        preview_text=payload.preview_text,
    )
    return Status(201, issue_out(issue))


@issues.get("/{issue_id}", response={200: schemas.IssueProgressOut, **ERRORS, **NOT_FOUND})
def issue_read(request, issue_id: int = ID):
    """An issue and its send's progress."""
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    progress = issue_progress(issue=issue)
    return {**issue_out(issue), "progress": progress}


def _counts_out(counts, *, aggregate_only):
    unique = None if aggregate_only else counts.unique
    return {"total": counts.total, "unique": unique, "filtered": counts.filtered}


@issues.get("/{issue_id}/report", response={200: schemas.IssueReportOut, **ERRORS, **NOT_FOUND})
def issue_report_read(request, issue_id: int = ID):
    """What became of an issue: deliveries, unsubscribes and people's clicks and opens, per
    link and per hour (docs/engagement.md)."""
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    report = issue_report(issue=issue)
    hide = report.aggregate_only
    return {
        "issue": issue_out(issue),
        "delivered": report.delivered,
        "failed": report.failed,
        "bounced": report.bounced,
        "complaints": report.complaints,
        "unsubscribes": report.unsubscribes,
        "clicks": _counts_out(report.clicks, aggregate_only=hide),
        "opens": _counts_out(report.opens, aggregate_only=hide) if report.tracks_opens else None,
        "links": [
            {
                "position": link.index + 1,
                "url": link.url,
                "clicks": link.clicks,
                "unique": None if hide else link.unique,
                "filtered": link.filtered,
            }
            for link in report.links
        ],
        "clicks_by_hour": [count for _hour, count in report.clicks_by_hour],
        "previous": [
            {
                "id": summary.issue.pk,
                "subject": summary.issue.subject,
                "delivered": summary.delivered,
                "unique_clicks": summary.unique_clicks,
                "unsubscribes": summary.unsubscribes,
            }
            for summary in report.previous
        ],
    }


@issues.patch("/{issue_id}", response={200: schemas.IssueOut, **ERRORS, **NOT_FOUND, **STATE})
def issue_text_update(request, payload: schemas.IssueUpdateIn, issue_id: int = ID):
    """Change a draft's or scheduled issue's subject, body or preview text (a field left out
    is kept); 409 once it is sending or sent."""
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    if issue.status not in EDITABLE:
        return error(409, f"A {issue.status} issue cannot be changed.", "status")
    given = payload.dict(exclude_none=True)
    issue = issue_update(
        issue=issue,
        subject=given.get("subject", issue.subject),
        body_markdown=given.get("body_markdown", issue.body_markdown),
        preview_text=given.get("preview_text", issue.preview_text),
    )
    return Status(200, issue_out(issue))


@issues.post("/{issue_id}/send", response={202: schemas.IssueOut, **ERRORS, **NOT_FOUND})
def issue_send_now(request, issue_id: int = ID):
    """Start sending the issue to every active subscriber; sending twice sends once."""
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    issue_send(issue=issue)
    issue.refresh_from_db()
    return Status(202, issue_out(issue))


def _issue_send_control(issue_id, action):
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    try:
        action(issue=issue)
    except SendStateRefused as refused:
        return error(409, refused.message_dict["status"][0], "status")
    issue.refresh_from_db()
    return Status(200, {**issue_out(issue), "progress": issue_progress(issue=issue)})


@issues.post(
    "/{issue_id}/pause", response={200: schemas.IssueProgressOut, **ERRORS, **NOT_FOUND, **STATE}
)
def issue_send_pause(request, issue_id: int = ID):
    """Pause the issue's send: no new message leaves within a second. Pausing twice is
    harmless; 409 unless the issue is sending or paused."""
    return _issue_send_control(issue_id, issue_pause)


@issues.post(
    "/{issue_id}/resume",
    response={200: schemas.IssueProgressOut, **ERRORS, **NOT_FOUND, **STATE},
)
def issue_send_continue(request, issue_id: int = ID):
    """Resume a paused send where it stopped (nobody gets a message twice); on a send that
    is running, restart what a failure stranded. 409 unless paused or sending."""
    return _issue_send_control(issue_id, issue_resume)


@issues.post(
    "/{issue_id}/cancel",
    response={200: schemas.IssueProgressOut, **ERRORS, **NOT_FOUND, **STATE},
)
def issue_send_cancel(request, issue_id: int = ID):
    """Cancel a running or paused send: what is not sent yet is cancelled (counted as
    cancelled, not failed). Cancelling twice is harmless; 409 unless sending, paused or
    cancelled."""
    return _issue_send_control(issue_id, issue_cancel)


webhooks = Router(tags=["webhooks"])


@issues.put("/{issue_id}/segment", response={200: schemas.IssueOut, **ERRORS, **NOT_FOUND})
def issue_audience_set(request, payload: schemas.IssueSegmentIn, issue_id: int = ID):
    """Send a draft or scheduled issue to one segment of its newsletter (null: everyone)."""
    issue = get_object_or_404(
        Issue.objects.filter(is_automated=False).select_related("newsletter"), pk=issue_id
    )
    segment = None
    if payload.segment is not None:
        segment = Segment.objects.filter(pk=payload.segment).first()
        if segment is None:
            raise DjangoValidationError({"segment": "There is no segment with that id."})
    return issue_out(issue_segment_set(issue=issue, segment=segment))


segments = Router(tags=["segments"])


def segment_out(segment):
    return {
        "id": segment.pk,
        "newsletter": segment.newsletter.slug,
        "name": segment.name,
        "rules": segment.rules,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


def segment_or_404(segment_id):
    return get_object_or_404(Segment.objects.select_related("newsletter"), pk=segment_id)


@segments.get("", response={200: list[schemas.SegmentOut], **ERRORS})
def segment_list(request, newsletter: str | None = None):
    """Every segment, or a newsletter's (``?newsletter=slug``)."""
    found = Segment.objects.select_related("newsletter").order_by("id")
    if newsletter is not None:
        found = found.filter(newsletter__slug=newsletter)
    return [segment_out(segment) for segment in found]


@segments.post("", response={201: schemas.SegmentOut, **ERRORS})
def segment_add(request, payload: schemas.SegmentIn):
    """Save a named filter over a newsletter's active subscribers."""
    newsletter = Newsletter.objects.filter(slug=payload.newsletter).first()
    if newsletter is None:
        raise DjangoValidationError({"newsletter": "There is no newsletter with that slug."})
    segment = segment_create(newsletter=newsletter, name=payload.name, rules=payload.rules)
    return Status(201, segment_out(segment))


@segments.get("/{segment_id}", response={200: schemas.SegmentOut, **ERRORS, **NOT_FOUND})
def segment_read(request, segment_id: int = ID):
    return segment_out(segment_or_404(segment_id))


@segments.put("/{segment_id}", response={200: schemas.SegmentOut, **ERRORS, **NOT_FOUND})
def segment_change(request, payload: schemas.SegmentUpdateIn, segment_id: int = ID):
    """Replace a segment's name and filter (sends already started keep theirs)."""
    segment = segment_or_404(segment_id)
    return segment_out(segment_update(segment=segment, name=payload.name, rules=payload.rules))


@segments.delete("/{segment_id}", response={204: None, **ERRORS, **NOT_FOUND, **STATE})
def segment_remove(request, segment_id: int = ID):
    """Delete a segment no issue was sent (or is to be sent) to."""
    try:
        segment_delete(segment=segment_or_404(segment_id))
    except ProtectedError:
        return error(409, "Issues were sent (or are to be sent) to this segment: it stays.")
    return Status(204, None)


@segments.get("/{segment_id}/count", response={200: schemas.SegmentCountOut, **ERRORS, **NOT_FOUND})
def segment_size(request, segment_id: int = ID):
    """How many active subscribers the segment matches now (exact)."""
    segment = segment_or_404(segment_id)
    return {"id": segment.pk, "count": segment_count(segment=segment)}


def webhook_out(endpoint, *, with_secret=False):
    data = {
        "id": endpoint.pk,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "is_active": endpoint.is_active,
        "created_at": endpoint.created_at,
    }
    if with_secret:
        data["secret"] = endpoint.secret
    return data


@webhooks.post("", response={201: schemas.WebhookSecretOut, **ERRORS})
def webhook_create(request, payload: schemas.WebhookIn):
    """Register an endpoint; its signing secret is in this answer (and in rotate-secret's)."""
    endpoint = endpoint_create(
        url=payload.url, events=payload.events, description=payload.description
    )
    return Status(201, webhook_out(endpoint, with_secret=True))


@webhooks.get("", response={200: list[schemas.WebhookOut], **ERRORS})
@paginate(PageNumberPagination, page_size=50)
def webhook_list(request):
    return [webhook_out(endpoint) for endpoint in WebhookEndpoint.objects.order_by("pk")]


@webhooks.delete("/{webhook_id}", response={204: None, **ERRORS, **NOT_FOUND})
def webhook_delete(request, webhook_id: int = ID):
    endpoint_delete(endpoint=get_object_or_404(WebhookEndpoint, pk=webhook_id))
    return Status(204, None)


@webhooks.post(
    "/{webhook_id}/rotate-secret", response={200: schemas.WebhookSecretOut, **ERRORS, **NOT_FOUND}
)
def webhook_rotate_secret(request, webhook_id: int = ID):
    endpoint = get_object_or_404(WebhookEndpoint, pk=webhook_id)
    endpoint_secret_rotate(endpoint=endpoint)
    return webhook_out(endpoint, with_secret=True)


automations = Router(tags=["automations"])


def automation_out(automation):
    return {
        "id": automation.pk,
        "newsletter": automation.newsletter.slug,
        "name": automation.name,
        "status": automation.status,
        "trigger": automation.trigger,
        "trigger_value": automation.trigger_value,
        "trigger_sources": automation.trigger_sources,
        "trigger_offset_seconds": automation.trigger_offset_seconds,
        "exit_tag": automation.exit_tag,
        "steps": [
            {"position": step.position, "kind": step.kind, "config": step.config}
            for step in automation.steps.all()
        ],
        "created_at": automation.created_at,
        "updated_at": automation.updated_at,
    }


def automation_or_404(automation_id):
    return get_object_or_404(Automation.objects.select_related("newsletter"), pk=automation_id)


@automations.get("", response={200: list[schemas.AutomationOut], **ERRORS})
def automation_list(request, newsletter: str | None = None):
    """Every automation, or a newsletter's (``?newsletter=slug``)."""
    found = Automation.objects.select_related("newsletter").order_by("id")
    if newsletter is not None:
        found = found.filter(newsletter__slug=newsletter)
    return [automation_out(automation) for automation in found.prefetch_related("steps")]


@automations.post("", response={201: schemas.AutomationOut, **ERRORS})
def automation_add(request, payload: schemas.AutomationIn):
    """Create a draft automation; activate it to start enrolling people."""
    newsletter = Newsletter.objects.filter(slug=payload.newsletter).first()
    if newsletter is None:
        raise DjangoValidationError({"newsletter": "There is no newsletter with that slug."})
    automation = automation_create(
        newsletter=newsletter,
        name=payload.name,
        trigger=payload.trigger,
        trigger_value=payload.trigger_value,
        trigger_sources=payload.trigger_sources,
        trigger_offset_seconds=payload.trigger_offset_seconds,
        exit_tag=payload.exit_tag,
        steps=payload.steps,
    )
    return Status(201, automation_out(automation))


@automations.get("/{automation_id}", response={200: schemas.AutomationOut, **ERRORS, **NOT_FOUND})
def automation_read(request, automation_id: int = ID):
    return automation_out(automation_or_404(automation_id))


@automations.patch("/{automation_id}", response={200: schemas.AutomationOut, **ERRORS, **NOT_FOUND})
def automation_change(request, payload: schemas.AutomationUpdateIn, automation_id: int = ID):
    """Change the given fields. New steps apply to whoever has not reached them yet."""
    automation = automation_or_404(automation_id)
    changes = payload.dict(exclude_unset=True)
    return automation_out(automation_update(automation=automation, **changes))


@automations.delete("/{automation_id}", response={204: None, **ERRORS, **NOT_FOUND})
def automation_remove(request, automation_id: int = ID):
    """Delete an automation and everyone's progress through it (what was sent stays)."""
    automation_delete(automation=automation_or_404(automation_id))
    return Status(204, None)


@automations.post(
    "/{automation_id}/activate", response={200: schemas.AutomationOut, **ERRORS, **NOT_FOUND}
)
def automation_start(request, automation_id: int = ID):
    """Start or resume: people enroll and move on through the steps."""
    return automation_out(automation_activate(automation=automation_or_404(automation_id)))


@automations.post(
    "/{automation_id}/pause",
    response={200: schemas.AutomationOut, **ERRORS, **NOT_FOUND, **STATE},
)
def automation_hold(request, automation_id: int = ID):
    """Hold everyone where they are until it is activated again."""
    automation = automation_or_404(automation_id)
    if automation.status != Automation.Status.ACTIVE:
        return error(409, "Only an active automation can be paused.", "status")
    return automation_out(automation_pause(automation=automation))


@automations.get(
    "/{automation_id}/counts",
    response={200: schemas.AutomationCountsOut, **ERRORS, **NOT_FOUND},
)
def automation_counts(request, automation_id: int = ID):
    """The funnel: how many are in, finished, exited; per step waiting, ran, sent, clicked."""
    automation = automation_or_404(automation_id)
    return {"id": automation.pk, **automation_funnel(automation=automation)}


@automations.get(
    "/{automation_id}/enrollments",
    response={200: list[schemas.EnrollmentOut], **ERRORS, **NOT_FOUND},
)
@paginate(PageNumberPagination, page_size=50)
def automation_enrollments(request, automation_id: int = ID, status: str | None = None):
    """Each person's progress (``?status=active|finished|exited``)."""
    automation = automation_or_404(automation_id)
    if status is not None and status not in Enrollment.Status.values:
        raise DjangoValidationError({"status": "active, finished or exited."})
    return [
        {
            "email": enrollment.profile.email,
            "status": enrollment.status,
            "position": enrollment.position,
            "next_run_at": enrollment.next_run_at,
            "exit_reason": enrollment.exit_reason,
            "enrolled_at": enrollment.enrolled_at,
            "ended_at": enrollment.ended_at,
        }
        for enrollment in enrollments_of(automation=automation, status=status)
    ]


api.add_router("/newsletters", newsletters)
api.add_router("/subscriptions", subscriptions)
api.add_router("/profiles", profiles)
api.add_router("/issues", issues)
api.add_router("/webhooks", webhooks)
api.add_router("/segments", segments)
api.add_router("/automations", automations)
