"""Email templates staff edit in the browser: a sandboxed engine, checks and a preview.

A stored template is Django template language, compiled by an engine of its own:

- no ``{% load %}`` but of ``i18n`` (the shipped files use ``{% translate %}``; it is
  rendered in the newsletter's language, docs/languages.md), so no other tag beyond
  the built-ins;
- ``{% extends %}`` and ``{% include %}`` only of the email templates shipped as files
  (``emails/<name>.html|txt``, named literally), never another file on the server;
- no width-padding filters or ``{% lorem %}`` (a few characters asking for gigabytes);
- no ``{% debug %}`` (it would print the whole context), no nested ``{% for %}`` and no
  loop over a literal, so rendering time stays proportional to the template and context;
- at most ``BODY_MAX_LENGTH`` characters, and its sample render at most ``OUTPUT_MAX_LENGTH``.

A template is saved only when it renders with a sample context and, for mail sent about
a newsletter, shows the unsubscribe link (``{{ unsubscribe_url }}``).
"""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import VariableDoesNotExist
from django.template.defaulttags import DebugNode, ForNode
from django.template.loader_tags import ExtendsNode, IncludeNode
from django.template.loaders.app_directories import Loader as AppDirectoriesLoader
from django.utils.safestring import mark_safe

from signalpost.conf import conf
from signalpost.newsletters.branding import brand_for

BODY_MAX_LENGTH = 100_000
OUTPUT_MAX_LENGTH = 1_000_000
# What can make a small template produce gigabytes: padding to a given width, and
# generated text of a given length. An email template has no use for either.
REFUSED_PARTS = re.compile(r"\|\s*(center|ljust|rjust|stringformat)\b|{%-?\s*lorem\b")
ALLOWED_FILE = re.compile(r"^emails/[a-z_]+\.(html|txt)$")
UNSUBSCRIBE_SAMPLE = "https://news.example.com/unsubscribe/SAMPLE-UNSUBSCRIBE-LINK/"
# Mail about a newsletter must carry the link to leave it (RFC 8058 aside, a visible one).
NEEDS_UNSUBSCRIBE = {
    "issue.html",
    "issue.txt",
    "confirmation.html",
    "confirmation.txt",
    "welcome.html",
    "welcome.txt",
}


SAMPLE_NEWSLETTER = {"name": "A sample newsletter", "slug": "sample", "description": ""}


class EmailFilesLoader(AppDirectoriesLoader):
    """The app directories loader, limited to the email templates shipped as files."""

    def get_template_sources(self, template_name):
        if ALLOWED_FILE.match(template_name):
            yield from super().get_template_sources(template_name)


ENGINE = Engine(
    loaders=["signalpost.newsletters.mailtemplates.EmailFilesLoader"],
    # Translation only: the shipped templates this engine extends (and staff start from)
    # say everything through {% translate %} and {% blocktranslate %}.
    libraries={"i18n": "django.templatetags.i18n"},
    autoescape=True,
    debug=False,
)


def _literal(expression: Any) -> str | None:
    """The constant string a tag argument names, or ``None`` when it is a variable."""
    var = getattr(expression, "var", None)
    return var if isinstance(var, str) and not expression.filters else None


def _problems(nodes: Any, *, in_loop: bool = False) -> list[str]:
    problems: list[str] = []
    for node in nodes:
        if isinstance(node, DebugNode):
            problems.append("{% debug %} is not allowed: it would print every variable")
        elif isinstance(node, ExtendsNode | IncludeNode):
            target = node.parent_name if isinstance(node, ExtendsNode) else node.template
            name = _literal(target)
            if name is None or not ALLOWED_FILE.match(name):
                problems.append(
                    "only the shipped email templates can be extended or included, "
                    'named in quotes (such as "emails/base.html")'
                )
        elif isinstance(node, ForNode):
            if in_loop:
                problems.append("a {% for %} inside another {% for %} is not allowed")
            if _literal(node.sequence) is not None:
                problems.append("a {% for %} over a literal is not allowed")
        for attribute in getattr(node, "child_nodelists", ()):
            children = getattr(node, attribute, None) or []
            problems += _problems(children, in_loop=in_loop or isinstance(node, ForNode))
        if isinstance(node, ExtendsNode):
            problems += _problems(node.nodelist, in_loop=in_loop)
    return problems


def template_compile(body: str) -> Template:
    """Compile ``body`` in the sandbox; raise ``ValidationError`` saying what is wrong."""
    if len(body) > BODY_MAX_LENGTH:
        raise ValidationError(
            f"A template has at most {BODY_MAX_LENGTH:,} characters; this one has {len(body):,}."
        )
    if "\x00" in body:
        raise ValidationError("A template cannot contain the NUL character.")
    refused = REFUSED_PARTS.search(body)
    if refused:
        raise ValidationError(
            f"{refused.group(0).strip()!r} is not allowed in an email template "
            "(center, ljust, rjust, stringformat and lorem could make it enormous)."
        )
    try:
        template = ENGINE.from_string(body)
    except TemplateSyntaxError as error:
        raise ValidationError(f"Template syntax error: {error}") from error
    except Exception as error:  # a loader or tag refusing what it was given
        raise ValidationError(f"The template cannot be read: {error}") from error
    problems = list(dict.fromkeys(_problems(template.nodelist)))
    if problems:
        raise ValidationError([problem[0].upper() + problem[1:] + "." for problem in problems])
    return template


def template_render_stored(body: str, context: dict[str, Any]) -> str:
    """Render a stored template's ``body`` with ``context`` (as the files are rendered)."""
    return template_compile(body).render(Context(context, autoescape=True))


def sample_context(*, name: str, newsletter: Any) -> dict[str, Any]:
    """A context like the one template ``name`` gets when it is sent, with sample values."""
    if newsletter is None and name in NEEDS_UNSUBSCRIBE:
        newsletter = SAMPLE_NEWSLETTER  # a template for every newsletter: shown for one
    profile = {"name": "Sam Sample", "email": "sam@example.com"}
    context: dict[str, Any] = {
        "profile": profile,
        "name": profile["name"],
        "newsletter": newsletter,
        "preferences_url": "https://news.example.com/preferences/SAMPLE/",
        "site_url": conf.SITE_URL,
        "unsubscribe_url": UNSUBSCRIBE_SAMPLE if newsletter is not None else None,
        "confirmation_url": "https://news.example.com/confirm/SAMPLE/",
        "expires_days": 7,
        "brand": brand_for(newsletter),
    }
    if name.startswith("issue"):
        context.update(
            issue={"subject": "A sample issue", "slug": "a-sample-issue"},
            body_html=mark_safe("<h2>A sample issue</h2><p>Hello <strong>readers</strong>.</p>"),
            body_text="## A sample issue\n\nHello **readers**.",
            web_url="https://news.example.com/n/sample/a-sample-issue/",
        )
    if name.startswith("preferences_link"):
        context.update(newsletter=None, unsubscribe_url=None)
    return context


def template_check(*, name: str, body: str, newsletter: Any) -> str:
    """Compile and render ``body`` as template ``name`` with a sample context; return the
    output. Raise ``ValidationError`` when it cannot be saved: a syntax error, a refused
    tag, a failure to render, an output too large or a missing unsubscribe link."""
    template = template_compile(body)
    try:
        output = template.render(Context(sample_context(name=name, newsletter=newsletter)))
    except VariableDoesNotExist as error:
        raise ValidationError(f"The template does not render: {error}") from error
    except Exception as error:
        raise ValidationError(
            f"The template does not render with a sample recipient: {type(error).__name__}: {error}"
        ) from error
    if len(output) > OUTPUT_MAX_LENGTH:
        raise ValidationError(
            f"The template renders {len(output):,} characters; at most {OUTPUT_MAX_LENGTH:,}."
        )
    if name in NEEDS_UNSUBSCRIBE and UNSUBSCRIBE_SAMPLE not in output:
        raise ValidationError(
            "The email must show the unsubscribe link: put {{ unsubscribe_url }} in it "
            '(the base template "emails/base.html" does, in its footer).'
        )
    return output
