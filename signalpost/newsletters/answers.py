"""The page a public form answers with, rendered once per shape and filled in per visitor.

Every ``POST /subscribe/`` answers with the same page but for the address typed in: the
base template, the navigation, the language switcher and a dozen translated strings
are rendered again for each visitor, which was a third of the request's CPU.
``answer_render`` renders such a page once per shape (template, language, the
newsletter as it is now, ...) with stand-in tokens for the visitor's values, through
``mailmerge`` (which proves the template treats them as opaque text), and answers each
visitor with that text and their own values put in: what ``render_page`` would give,
at the cost of a string join.

A process remembers the shapes it rendered (``ANSWERS_KEPT_MAX``, then it starts
over), each for a minute at most (so a template showing the date or time shows it
within a minute). The page is rendered in full, as ``render_page`` does, when a merge
is not proven safe: beside ``mailmerge``'s own checks, when the template reads
anything of the request or its context processors that the shape does not name
(``user``, ``messages``, ``csrf_token``, ``csp_nonce``, ``request.user``, ...: a
host site's base template that greets the signed-in user is rendered per visitor), or
when a value of the context is neither text, a number nor a model row.
"""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.context import RequestContext
from django.template.loader import get_template
from django.urls import get_script_prefix, get_urlconf
from django.utils import translation

from signalpost.conf import conf
from signalpost.newsletters import mailmerge
from signalpost.pages import page_context, render_page

ANSWERS_KEPT_MAX = 256
ANSWER_KEPT_SECONDS = 60
_answers: dict[Any, Any] = {}
# What a page may read of the request's context processors: the request (as a stand-in
# whose full path is one of the visitor's values) and constants.
_PROCESSED_READABLE = {"request", "DEFAULT_MESSAGE_LEVELS"}
_FULL_PATH = "request.get_full_path"


class _RequestStandIn:
    """The request, as a page being merged sees it: its full path (a visitor's value),
    and what ``{% url %}`` reads; reading anything else refuses the merge."""

    def __init__(self, request: HttpRequest, full_path: str, probe: mailmerge.Probe) -> None:
        self._request, self._full_path, self._probe = request, full_path, probe

    def get_full_path(self) -> str:
        return self._full_path

    def __getattr__(self, name: str) -> Any:
        if name in ("current_app", "resolver_match"):  # the view's, named in the shape
            return getattr(self._request, name)
        self._probe.refused = True
        return getattr(self._request, name)


class _WatchedContext(RequestContext):
    """A ``RequestContext`` that refuses the merge when the page reads a context
    processor's value (other than the request stand-in's and constants)."""

    def __init__(
        self,
        request: HttpRequest,
        values: dict[str, Any],
        *,
        stand_in: _RequestStandIn,
        probe: mailmerge.Probe,
        autoescape: bool,
    ) -> None:
        super().__init__(request, autoescape=autoescape)
        self._stand_in, self._probe = stand_in, probe
        self.push(values)  # above the processors' values, as make_context() puts them

    @contextmanager
    def bind_template(self, template: Any) -> Iterator[None]:
        with super().bind_template(template):
            processed: dict[Any, Any] = self.dicts[self._processors_index]  # type: ignore[attr-defined]
            if "request" in processed:
                processed["request"] = self._stand_in
            self.request = self._stand_in  # type: ignore[assignment]
            yield

    def _watch(self, key: Any) -> None:
        index = getattr(self, "_processors_index", None)  # none in a context made by new()
        processed = self.dicts[index] if index is not None else None
        for values in reversed(self.dicts):
            if key in values:
                if values is processed and key not in _PROCESSED_READABLE:
                    self._probe.refused = True
                return

    def __getitem__(self, key: Any) -> Any:
        self._watch(key)
        return super().__getitem__(key)

    def get(self, key: Any, otherwise: Any = None) -> Any:
        self._watch(key)
        return super().get(key, otherwise)

    def __contains__(self, key: Any) -> bool:
        self._watch(key)
        return super().__contains__(key)

    def flatten(self) -> Any:
        self._probe.refused = True
        return super().flatten()


def _fingerprint(value: Any) -> Any:
    """What of ``value`` a page can show, as a key; ``None`` if it cannot be one."""
    if value is None or isinstance(value, str | int | float | bool):
        return (type(value).__name__, value)
    if isinstance(value, Model):
        fields = tuple(
            (field.attname, repr(getattr(value, field.attname)))
            for field in value._meta.concrete_fields
        )
        return (value._meta.label, fields)
    return None


def answer_render(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any],
    *,
    personal: Mapping[str, str],
    status: int | None = None,
) -> HttpResponse:
    """``render_page(request, template_name, {**context, **personal}, status)``: the same
    page, rendered once per shape and filled in with ``personal``'s values (the
    visitor's, such as the address they typed) when that is proven to give it."""

    def render_direct() -> str:
        response = render_page(request, template_name, {**context, **personal})
        return response.content.decode(response.charset)

    fingerprints = tuple((name, _fingerprint(value)) for name, value in context.items())
    if any(print_ is None for _, print_ in fingerprints) or not all(
        isinstance(value, str) for value in personal.values()
    ):
        return render_page(request, template_name, {**context, **personal}, status=status)
    match = request.resolver_match
    key = (
        template_name,
        conf.BASE_TEMPLATE,
        translation.get_language(),
        get_script_prefix(),
        get_urlconf(),
        match.view_name if match else None,
        getattr(request, "current_app", None),
        fingerprints,
        int(time.monotonic() // ANSWER_KEPT_SECONDS),
    )
    values = {**personal, _FULL_PATH: request.get_full_path()}

    def render_with(tokens: Mapping[str, str], probe: mailmerge.Probe) -> str:
        stand_in = _RequestStandIn(request, tokens[_FULL_PATH], probe)
        page = {**page_context(), **context}
        page.update((name, tokens[name]) for name in personal)
        template: Any = get_template(template_name)
        watched = _WatchedContext(
            request,
            page,
            stand_in=stand_in,
            probe=probe,
            autoescape=template.backend.engine.autoescape,
        )
        return template.template.render(watched)

    if len(_answers) >= ANSWERS_KEPT_MAX:
        _answers.clear()
    content = mailmerge.merged(
        _answers,
        key=key,
        values=values,
        render_with=render_with,
        finish=lambda text: text,
        render_direct=render_direct,
    )
    return HttpResponse(content, status=status)
