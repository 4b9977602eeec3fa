"""What operators and monitors rely on: HEAD, error pages, /healthz, headers, logs."""

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.durable.models import WorkerProcess
from signalpost.logs import JsonFormatter
from signalpost.newsletters.links import confirmation_path, preferences_path, unsubscribe_path
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_pages():
    """Every public page a person or a monitor may open, with a real token where one is needed."""
    weekly = make_newsletter(slug="weekly", name="The Weekly")
    careful = make_newsletter(slug="careful", name="The Careful", opt_in="double")
    active = subscribe(email="ann@example.com", newsletter=weekly, source="form")
    pending = subscribe(email="bob@example.com", newsletter=careful, source="form")
    issue = issue_create(newsletter=weekly, subject="First light", body_markdown="Hello.")
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT, sent_at=timezone.now())
    issue.refresh_from_db()
    return [
        "/",
        "/subscribe/",
        "/unsubscribe/",
        "/preferences/",
        preferences_path(profile=active.profile),
        preferences_path(profile=active.profile) + "data.json",
        confirmation_path(profile=pending.profile, newsletter=careful),
        unsubscribe_path(profile=active.profile, newsletter=weekly),
        "/n/weekly/",
        "/n/weekly/feed/",
        f"/n/weekly/{issue.slug}/",
        "/api/v1/docs",
        "/api/v1/openapi.json",
        "/healthz",
        "/admin/login/",
    ]


def test_head_answers_every_public_page_without_a_body_and_changes_nothing(client, public_pages):
    WorkerProcess.objects.create(
        worker_id="w", hostname="h", pid=1, queues="default",
        started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    before = sorted(Subscription.objects.values_list("profile__email", "status"))
    for url in public_pages:
        got = client.get(url)
        head = client.head(url)
        assert (url, got.status_code, head.status_code) == (url, 200, 200)
        assert head.content == b"", url
        assert head["Content-Type"] == got["Content-Type"], url
    # HEAD on a confirmation or one-click unsubscribe link confirms and ends nothing.
    assert sorted(Subscription.objects.values_list("profile__email", "status")) == before


def test_an_unknown_address_gets_the_sites_own_404_page_with_a_way_back(client):
    page = client.get("/no/such/page/")
    assert page.status_code == 404
    html = page.content.decode()
    assert "Page not found" in html
    assert 'href="/static/signalpost/site.css"' in html
    assert '<a href="/">See all newsletters</a>' in html


def failing_view(request):
    raise RuntimeError("the view broke")


urlpatterns = [path("boom/", failing_view), path("", include("signalpost.urls"))]
handler500 = "signalpost.views.server_error"


@pytest.mark.urls("tests.test_site_operations")
def test_a_failing_view_gets_the_sites_own_500_page_never_the_debug_page(settings):
    settings.DEBUG = False
    page = Client(raise_request_exception=False).get("/boom/")
    assert page.status_code == 500
    html = page.content.decode()
    assert "Something went wrong on our side" in html
    assert "the view broke" not in html and "Traceback" not in html
    assert 'href="/static/signalpost/site.css"' in html


def beat(seconds_ago):
    now = timezone.now()
    WorkerProcess.objects.create(
        worker_id=f"w{seconds_ago}", hostname="h", pid=1, queues="default",
        started_at=now - timedelta(hours=1), heartbeat_at=now - timedelta(seconds=seconds_ago),
    )  # fmt: skip


def test_healthz_names_database_cache_and_the_freshest_worker(client, settings):
    settings.SIGNALPOST_WORKER_LEASE_SECONDS = 30
    beat(500)
    beat(3)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    report = answer.json()
    assert report["status"] == "ok"
    assert (report["database"], report["cache"]) == ("ok", "ok")
    assert report["worker"]["alive"] is True
    assert 2 <= report["worker"]["age_seconds"] < 30
    assert "no-cache" in answer["Cache-Control"]


def test_healthz_is_503_when_no_worker_beat_for_two_leases(client, settings):
    settings.SIGNALPOST_WORKER_LEASE_SECONDS = 30
    assert client.get("/healthz").status_code == 503  # no worker ever
    beat(61)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["worker"]["alive"] is False
    assert answer.json()["status"] == "unavailable"


def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(WorkerProcess.objects, "aggregate", unreachable)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "unreachable"


def test_healthz_costs_one_query(client, django_assert_num_queries):
    beat(1)
    with django_assert_num_queries(1):
        assert client.get("/healthz").status_code == 200


def test_the_api_docs_load_swagger_from_this_site(client):
    html = client.get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_public_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/")["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe-inline" not in policy


def test_the_admin_allows_inline_styles_but_only_this_sites_scripts(client):
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    scripts = next(d for d in policy.split("; ") if d.startswith("script-src"))
    assert scripts.startswith("script-src 'self'") and "unsafe" not in scripts
    assert "https:" not in policy


def test_a_request_logs_one_line_with_its_route_not_its_tokens(client, caplog):
    profile = Profile.objects.create(email="ann@example.com")
    secret_path = preferences_path(profile=profile)
    with caplog.at_level(logging.INFO, logger="signalpost.requests"):
        client.get(secret_path + "?user_email=ann@example.com")
    (line,) = [r for r in caplog.records if r.name == "signalpost.requests"]
    assert line.getMessage().startswith("GET /preferences/<str:token>/ 200 ")
    assert line.duration_ms >= 0
    logged = JsonFormatter().format(line)
    assert secret_path.split("/")[2] not in logged and "ann@" not in logged
    assert json.loads(logged)["route"] == "/preferences/<str:token>/"
    assert json.loads(logged)["status"] == 200


@pytest.mark.django_db(transaction=True)
def test_a_task_logs_one_line_with_outcome_and_duration_but_not_its_arguments(caplog):
    careful = make_newsletter(slug="careful", opt_in="double")
    subscribe(email="ann@example.com", newsletter=careful, source="form")
    with caplog.at_level(logging.INFO, logger="signalpost.tasks"):
        run_worker_until_idle()
    lines = [r for r in caplog.records if r.name == "signalpost.tasks"]
    assert lines and all(r.outcome == "SUCCESSFUL" and r.duration_ms >= 0 for r in lines)
    logged = json.loads(JsonFormatter().format(lines[0]))
    assert logged["outcome"] == "SUCCESSFUL" and logged["task"] and logged["task_id"]
    assert "ann@" not in json.dumps([JsonFormatter().format(r) for r in lines])


def test_log_format_json_is_one_json_object_per_line():
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "import logging; logging.getLogger('signalpost.requests').info('x %s', 1, "
         "extra={'route': '/', 'status': 200})"],
        env={**os.environ, "LOG_FORMAT": "json"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    line = json.loads(shown.stderr.strip().splitlines()[-1])
    assert (line["message"], line["route"], line["status"]) == ("x 1", "/", 200)


def test_a_forwarded_https_claim_is_ignored_unless_a_proxy_is_declared(client, settings):
    # BEHIND_HTTPS_PROXY unset: a client saying "https" must not make Django believe it.
    settings.SECURE_HSTS_SECONDS = 3600
    answer = client.get("/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in answer
