"""``manage.py check`` tells a host project what is missing or misconfigured for Signalpost,
one message each, with its fix (docs/integrate.md)."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from signalpost import checks

HOST_TEMPLATES = str(Path(__file__).parent / "hosts" / "templates")


def ids(messages):
    return [message.id for message in messages]


def test_the_standalone_settings_pass_every_signalpost_check(settings):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"  # as production requires
    for check in (
        checks.apps_installed_check,
        checks.task_backend_check,
        checks.middleware_check,
        checks.base_template_check,
        checks.verified_email_hook_check,
        checks.site_url_check,
        checks.private_storage_check,
    ):
        assert check() == [], check.__name__


def test_a_missing_app_is_named_with_its_fix(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "signalpost.api"]
    [message] = checks.apps_installed_check()
    assert message.id == "signalpost.E001"
    assert "'signalpost.api'" in message.msg and "Add 'signalpost.api'" in message.hint


def test_the_durable_worker_must_come_before_django_tasks_dbs(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "signalpost.durable"]
    apps.insert(apps.index("django_tasks_db") + 1, "signalpost.durable")
    settings.INSTALLED_APPS = apps
    assert ids(checks.apps_installed_check()) == ["signalpost.E002"]


@pytest.mark.parametrize(
    "tasks",
    [
        {},
        {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}},
        {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["mail"]}},
    ],
)
def test_a_task_backend_other_than_the_database_is_refused(settings, tasks):
    settings.TASKS = tasks
    [message] = checks.task_backend_check()
    assert message.id == "signalpost.E003"
    assert "django_tasks_db.DatabaseBackend" in message.hint


def test_missing_middleware_is_named_one_message_each(settings):
    settings.MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    messages = checks.middleware_check()
    assert ids(messages) == ["signalpost.E004"] * 3 + ["signalpost.W002"]
    assert "AuthenticationMiddleware" in messages[2].msg


def test_a_base_template_that_does_not_load_is_an_error(settings):
    settings.SIGNALPOST_BASE_TEMPLATE = "host/nowhere.html"
    [message] = checks.base_template_check()
    assert message.id == "signalpost.E005" and "TemplateDoesNotExist" in message.msg


def test_a_base_template_without_the_content_block_is_an_error(settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [HOST_TEMPLATES]}]
    settings.SIGNALPOST_BASE_TEMPLATE = "host/no_content.html"
    [message] = checks.base_template_check()
    assert message.id == "signalpost.E005" and "{% block content %}" in message.msg


def test_a_base_template_inherits_its_parents_blocks(settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [HOST_TEMPLATES]}]
    settings.SIGNALPOST_BASE_TEMPLATE = "host/child.html"
    assert checks.base_template_check() == []


@pytest.mark.parametrize(
    "path",
    ["tests.hosts.hooks.no_such_function", "nowhere.at.all", "tests.hosts.hooks.not_callable"],
)
def test_a_verified_email_hook_that_cannot_be_called_is_an_error(settings, path):
    settings.SIGNALPOST_VERIFIED_EMAIL = path
    [message] = checks.verified_email_hook_check()
    assert message.id == "signalpost.E006" and path in message.msg


def test_a_verified_email_hook_that_can_be_called_passes(settings):
    settings.SIGNALPOST_VERIFIED_EMAIL = "tests.hosts.hooks.verified_email"
    assert checks.verified_email_hook_check() == []


@pytest.mark.parametrize("site_url", ["news.example.com", "ftp://news.example.com", ""])
def test_a_site_url_that_is_no_http_url_is_an_error(settings, site_url):
    settings.SIGNALPOST_SITE_URL = site_url
    assert ids(checks.site_url_check()) == ["signalpost.E007"]


def test_the_development_site_url_in_production_is_a_warning(settings):
    del settings.SIGNALPOST_SITE_URL
    settings.DEBUG = False
    assert ids(checks.site_url_check()) == ["signalpost.W001"]


@pytest.mark.django_db
def test_manage_py_check_stops_on_a_misconfiguration(settings):
    settings.SIGNALPOST_VERIFIED_EMAIL = "nowhere.at.all"
    with pytest.raises(SystemCheckError, match=r"signalpost\.E006"):
        call_command("check")
