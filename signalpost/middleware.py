"""HTTP details Django leaves to the server: HEAD without a body, and request bodies
checked before any view or CSRF check reads them.

Django reads a form's body when something first asks for ``request.POST``: in
``CsrfViewMiddleware``, for most pages. A body it cannot read raises there, and
Django's 400 handler, wrapped in ``requires_csrf_token``, runs the same CSRF check
again, reads ``request.POST`` again and raises again: the client gets a bare 500.
:class:`RequestBodyMiddleware` (before ``CsrfViewMiddleware``) answers such requests
itself, with the site's error page or the API's JSON error, before anyone reads them:

- a body larger than the view's limit (``request_body_max_bytes``): 413, known from
  ``Content-Length`` before a byte of it is read;
- form data declaring a charset other than UTF-8 (Django refuses those, and unknown
  charsets would be read as UTF-8 without a word): 400;
- form data that cannot be parsed (broken multipart, too many fields: more than
  ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, or the view's own ``uploads.takes_fields`` limit)
  or that carries a file to a view taking none (:mod:`signalpost.uploads`): 400.
"""

import codecs
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.http import JsonResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils.datastructures import MultiValueDict
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from signalpost.conf import conf
from signalpost.pages import render_page
from signalpost.uploads import FileRefused, view_fields_max

FORM_CONTENT_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
API_NAMESPACE = "api"


def request_body_max_bytes(request):
    """Return how many bytes of body the view ``request`` resolved to accepts.

    ``SIGNALPOST_REQUEST_BODY_MAX_BYTES_BY_VIEW`` names views by URL name
    (``api:subscribers_import_csv``) or namespace (``admin``); the first match,
    most specific first, wins; any other view takes ``SIGNALPOST_REQUEST_BODY_MAX_BYTES``.
    """
    limits = conf.REQUEST_BODY_MAX_BYTES_BY_VIEW
    match = request.resolver_match
    namespaces = match.namespaces
    names = [match.view_name, *(":".join(namespaces[:n]) for n in range(len(namespaces), 0, -1))]
    for name in names:
        if name in limits:
            return limits[name]
    return conf.REQUEST_BODY_MAX_BYTES


def _number(value: int) -> str:
    """``value`` with the active language's digit grouping (65,536; 65.536)."""
    return number_format(value, force_grouping=True)


def _content_length(request):
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _refusal(request, *, status, message, field=None):
    """The API's JSON error, or the site's error page, saying ``message``."""
    if API_NAMESPACE in request.resolver_match.namespaces:
        return JsonResponse({"errors": [{"field": field, "message": message}]}, status=status)
    title = _("Request too large") if status == 413 else _("Bad request")
    context = {"title": title, "message": message}
    return render_page(request, "signalpost/400.html", context, status=status)


def _form_charset_refusal(request):
    """Refuse form data in a charset other than UTF-8; ``None`` if it is UTF-8."""
    charset = request.content_params.get("charset")
    if charset is None:
        return None
    try:
        utf8 = codecs.lookup(charset).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        message = _("Form data must be sent as UTF-8; this request says charset=%(charset)s.") % {
            "charset": charset
        }
        return _refusal(request, status=400, message=message)
    # "utf8", "UTF_8": Django reads only the exact name "utf-8" as UTF-8.
    request.encoding = "utf-8"
    return None


def _form_read(request, *, fields_max):
    """Read ``request``'s urlencoded form data allowing ``fields_max`` fields, as Django
    reads it under ``DATA_UPLOAD_MAX_NUMBER_FIELDS``; raise ``TooManyFieldsSent`` beyond."""
    if request.body:
        try:
            pairs = parse_qsl(
                request.body.decode(request.encoding or settings.DEFAULT_CHARSET, "replace"),
                keep_blank_values=True,
                max_num_fields=fields_max,
            )
        except ValueError as error:
            raise TooManyFieldsSent(str(error)) from error
        form = QueryDict(mutable=True)
        for name, value in pairs:
            form.appendlist(name, value)
        form._mutable = False
        # What Django's own reading sets (HttpRequest._load_post_and_files).
        request._post, request._files = form, MultiValueDict()


class RequestBodyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        fault = getattr(request, "content_type_fault", None)
        if fault:
            message = _("%(fault)s Send a valid one.") % {"fault": fault}
            return _refusal(request, status=400, message=message)
        limit = request_body_max_bytes(request)
        length = _content_length(request)
        if length > limit:
            message = _(
                "The request body has %(length)s bytes; at most %(limit)s are taken here."
            ) % {"length": _number(length), "limit": _number(limit)}
            return _refusal(request, status=413, message=message)
        if request.method != "POST" or request.content_type not in FORM_CONTENT_TYPES:
            return None
        refusal = _form_charset_refusal(request)
        if refusal is not None:
            return refusal
        fields_max = view_fields_max(request)
        try:
            if fields_max and request.content_type == "application/x-www-form-urlencoded":
                _form_read(request, fields_max=fields_max)
            request.POST  # noqa: B018 (parse it now, under the rules above)
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            message = _("The form data has more than %(limit)s bytes.") % {"limit": _number(limit)}
            return _refusal(request, status=413, message=message)
        except TooManyFieldsSent:
            limit = fields_max or settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            message = _("The form data has more than %(limit)s fields.") % {"limit": _number(limit)}
            return _refusal(request, status=400, message=message)
        except FileRefused as exc:
            return _refusal(request, status=400, message=str(exc), field=exc.field)
        except (BadRequest, SuspiciousOperation, MultiPartParserError) as exc:
            message = _("The form data cannot be read (%(error)s).") % {"error": exc}
            return _refusal(request, status=400, message=message)
        except UnreadablePostError:
            message = _("The request body was cut short.")
            return _refusal(request, status=400, message=message)
        return None


class HeadWithoutBodyMiddleware:
    """Answer HEAD with a GET's headers and no body.

    Django renders the page for HEAD as for GET; runserver drops the body but
    some WSGI servers (gunicorn) only warn and drop it themselves. Dropping it here keeps the
    ``Content-Length`` the GET would have (RFC 9110) and the server quiet.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method == "HEAD" and not response.streaming:
            response.content = b""
        return response
