"""System checks (``manage.py check``) of a project that runs Signalpost: the standalone
service or a host site (docs/integrate.md). One message per problem, each with its fix.

- ``signalpost.E001``: one of Signalpost's apps (or an app it needs) is not installed;
- ``signalpost.E002``: ``signalpost.durable`` comes after ``django_tasks_db`` (its worker,
  with heartbeats and recovery, must replace theirs);
- ``signalpost.E003``: the default task backend is not django-tasks-db's database backend
  (the transactional outbox that durable receivers rely on), or lacks the default queue;
- ``signalpost.E004``: middleware the pages need is missing (sessions, CSRF, users);
- ``signalpost.E005``: ``SIGNALPOST_BASE_TEMPLATE`` cannot be loaded or lacks a block the
  pages fill;
- ``signalpost.E006``: ``SIGNALPOST_VERIFIED_EMAIL`` is not an importable callable;
- ``signalpost.E007``: ``SIGNALPOST_SITE_URL`` is not an absolute http(s) URL;
- ``signalpost.W001``: ``SIGNALPOST_SITE_URL`` is left at its development default while
  ``DEBUG`` is off (every email would link to 127.0.0.1);
- ``signalpost.W002``: ``RequestBodyMiddleware`` is missing (oversized and hostile bodies
  get Django's defaults instead of Signalpost's clear 400 and 413 answers);
- ``signalpost.W003``: ``STORAGES`` has no ``private`` entry, so staff cannot import
  subscribers (the uploaded lists hold personal data: never in a served folder).
"""

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.template.loader_tags import BlockNode, ExtendsNode
from django.utils.module_loading import import_string

from signalpost.conf import DEFAULTS, conf

# In this order: signalpost.durable before django_tasks_db (E002).
REQUIRED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "signalpost",
    "signalpost.durable",
    "django_tasks_db",
    "signalpost.accounts",
    "signalpost.newsletters",
    "signalpost.activity",
    "signalpost.publishing",
    "signalpost.engagement",
    "signalpost.webhooks",
    "signalpost.automations",
    "signalpost.api",
]
REQUIRED_MIDDLEWARE = {
    "django.contrib.sessions.middleware.SessionMiddleware": "sessions",
    "django.middleware.csrf.CsrfViewMiddleware": "the forms' CSRF protection",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "request.user",
}
BODY_MIDDLEWARE = "signalpost.middleware.RequestBodyMiddleware"
TASK_BACKEND = "django_tasks_db.DatabaseBackend"
# The blocks Signalpost's pages fill (docs/integrate.md).
BASE_TEMPLATE_BLOCKS = ("title", "content")


@register(Tags.compatibility)
def apps_installed_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Each app Signalpost needs is installed, and its worker replaces django-tasks-db's."""
    installed = [config.name for config in apps.get_app_configs()]
    errors: list[CheckMessage] = [
        Error(
            f"INSTALLED_APPS lacks {name!r}, which Signalpost needs",
            hint=f"Add {name!r} to INSTALLED_APPS (docs/integrate.md lists them in order).",
            id="signalpost.E001",
        )
        for name in REQUIRED_APPS
        if name not in installed
    ]
    if (
        "signalpost.durable" in installed
        and "django_tasks_db" in installed
        and installed.index("signalpost.durable") > installed.index("django_tasks_db")
    ):
        errors.append(
            Error(
                "'signalpost.durable' comes after 'django_tasks_db' in INSTALLED_APPS, "
                "so db_worker is theirs, without heartbeats or recovery",
                hint="Move 'signalpost.durable' above 'django_tasks_db'.",
                id="signalpost.E002",
            )
        )
    return errors


@register(Tags.compatibility)
def task_backend_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The default task backend is the database one, with the default queue."""
    default = getattr(settings, "TASKS", {}).get("default", {})
    hint = (
        'Set TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", '
        '"QUEUES": ["default"]}}.'
    )
    if default.get("BACKEND") != TASK_BACKEND:
        return [
            Error(
                f"the default task backend is {default.get('BACKEND')!r}, not {TASK_BACKEND!r}: "
                "durable receivers need tasks written in the sender's transaction",
                hint=hint,
                id="signalpost.E003",
            )
        ]
    if "default" not in default.get("QUEUES", ["default"]):
        return [
            Error(
                "the default task backend has no 'default' queue, where Signalpost "
                "enqueues its tasks",
                hint=hint,
                id="signalpost.E003",
            )
        ]
    return []


@register(Tags.compatibility)
def middleware_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The middleware the pages and the account component need is there."""
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    messages: list[CheckMessage] = [
        Error(
            f"MIDDLEWARE lacks {path!r}, which Signalpost's pages need for {purpose}",
            hint=f"Add {path!r} to MIDDLEWARE (in Django's usual order).",
            id="signalpost.E004",
        )
        for path, purpose in REQUIRED_MIDDLEWARE.items()
        if path not in middleware
    ]
    if BODY_MIDDLEWARE not in middleware:
        messages.append(
            Warning(
                f"MIDDLEWARE lacks {BODY_MIDDLEWARE!r}: oversized or malformed bodies get "
                "Django's defaults instead of a 400 or 413 that says why",
                hint=f"Add {BODY_MIDDLEWARE!r} above 'django.middleware.csrf.CsrfViewMiddleware'.",
                id="signalpost.W002",
            )
        )
    return messages


@register(Tags.templates)
def base_template_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``SIGNALPOST_BASE_TEMPLATE`` loads and has the blocks the pages fill."""
    name = conf.BASE_TEMPLATE
    hint = (
        f"Set SIGNALPOST_BASE_TEMPLATE to a template with the blocks "
        f"{', '.join(BASE_TEMPLATE_BLOCKS)} (docs/integrate.md), or remove it to use "
        f"{DEFAULTS['BASE_TEMPLATE']!r}."
    )
    try:
        template = get_template(name)
    except (TemplateDoesNotExist, TemplateSyntaxError) as error:
        return [
            Error(
                f"SIGNALPOST_BASE_TEMPLATE {name!r} cannot be loaded: {error.__class__.__name__}",
                hint=hint,
                id="signalpost.E005",
            )
        ]
    blocks = _block_names(template)
    return [
        Error(
            f"SIGNALPOST_BASE_TEMPLATE {name!r} has no {{% block {block} %}}: "
            "Signalpost's pages would show nothing there",
            hint=hint,
            id="signalpost.E005",
        )
        for block in BASE_TEMPLATE_BLOCKS
        if block not in blocks
    ]


@register(Tags.compatibility)
def verified_email_hook_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``SIGNALPOST_VERIFIED_EMAIL`` names a function that can be imported."""
    path = conf.VERIFIED_EMAIL
    if path is None:
        return []
    try:
        hook = import_string(path)
    except ImportError as error:
        problem = f"cannot be imported ({error})"
    else:
        if callable(hook):
            return []
        problem = "is not callable"
    return [
        Error(
            f"SIGNALPOST_VERIFIED_EMAIL {path!r} {problem}",
            hint="Set it to the dotted path of a function that takes a user and returns "
            "their verified email address or None (docs/integrate.md), or remove it.",
            id="signalpost.E006",
        )
    ]


@register(Tags.compatibility)
def site_url_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``SIGNALPOST_SITE_URL`` is where subscribers reach the site."""
    site_url = conf.SITE_URL
    parts = urlsplit(site_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return [
            Error(
                f"SIGNALPOST_SITE_URL {site_url!r} is not an absolute http(s) URL; every "
                "link in an email starts with it",
                hint='Set SIGNALPOST_SITE_URL = "https://www.example.com" (the site\'s '
                "address, without the prefix Signalpost's URLs are included at).",
                id="signalpost.E007",
            )
        ]
    if site_url == DEFAULTS["SITE_URL"] and not settings.DEBUG:
        return [
            Warning(
                f"SIGNALPOST_SITE_URL is left at {site_url!r} with DEBUG off: the links in "
                "emails would point at this machine",
                hint='Set SIGNALPOST_SITE_URL = "https://www.example.com" (the address '
                "subscribers reach the site at).",
                id="signalpost.W001",
            )
        ]
    return []


def _block_names(template: Any) -> set[str]:
    """The names of the blocks ``template`` (a backend's template) and its parents define."""
    names: set[str] = set()
    inner = getattr(template, "template", template)
    for node in inner.nodelist.get_nodes_by_type(BlockNode):
        names.add(node.name)
    # A base that itself extends another: the parents' blocks count too.
    for extends in inner.nodelist.get_nodes_by_type(ExtendsNode):
        parent_name = extends.parent_name.resolve({})
        if isinstance(parent_name, str):
            names |= _block_names(get_template(parent_name))
    return names


@register(Tags.compatibility)
def private_storage_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``STORAGES['private']`` exists for the subscriber lists staff upload."""
    if "private" in settings.STORAGES:
        return []
    return [
        Warning(
            "STORAGES has no 'private' entry: staff cannot import subscribers until it has",
            hint="Add STORAGES['private'] = {'BACKEND': "
            "'django.core.files.storage.FileSystemStorage', 'OPTIONS': {'location': "
            "BASE_DIR / 'private'}}: a folder no URL serves (the lists hold personal data).",
            id="signalpost.W003",
        )
    ]
