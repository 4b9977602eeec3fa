"""No request, however malformed or large, gets a 500: a 400 or 413 that says why.

The public pages are enumerated from the URLconf (a new page must be added to
``PUBLIC_PAGES`` to be fuzzed, and this test says so) and the API's operations from
its OpenAPI document, so a new one is covered as soon as it exists. tests/test_api_schema.py
runs schemathesis over the API with schema-shaped JSON; this covers what it does not
generate: other encodings, NaN and friends, deep nesting, huge numbers, files, sizes.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.files import uploadhandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import JsonResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path

from signalpost.accounts.models import Profile
from signalpost.api.api import api
from signalpost.api.tokens import api_token_create
from signalpost.automations.services import automation_create
from signalpost.cli import web_command
from signalpost.newsletters import tokens
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import segment_create, subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import BODY_MAX_LENGTH, issue_create
from signalpost.publishing.tracking import CLICK, OPEN, TokenSigner
from signalpost.uploads import takes_files
from signalpost.webhooks.models import WebhookEndpoint
from tests.durable_helpers import run_form_requests
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db

CSRF_SECRET = "a" * 32
FORM = "application/x-www-form-urlencoded"
SIGN_UP = "user_email=jane%40example.com&newsletter=weekly"


@pytest.fixture
def browser():
    """A client as a browser is: it holds a CSRF cookie and sends the token back."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["csrftoken"] = CSRF_SECRET
    return client


def send(client, method, url, body, content_type, **extra):
    return client.generic(
        method, url, body, content_type=content_type, HTTP_X_CSRFTOKEN=CSRF_SECRET, **extra
    )


@pytest.fixture
def weekly(db):
    # Open to forms on any website, so the embedded form's endpoint reads the bodies too.
    return make_newsletter(slug="weekly", name="The Weekly", embed_allowed=True)


@pytest.fixture
def jane(weekly):
    subscribe(email="jane@example.com", newsletter=weekly, source="admin")
    return Profile.objects.get(email="jane@example.com")


def multipart(*, fields=(), files=(), boundary="sp-boundary", charset=None):
    """A multipart/form-data body and its content type."""
    lines = []
    for name, value in fields:
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    for name, filename, content in files:
        lines += [
            f"--{boundary}",
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"',
            "Content-Type: application/octet-stream",
            "",
            content,
        ]
    body = ("\r\n".join([*lines, f"--{boundary}--", ""])).encode("latin-1")
    content_type = f"multipart/form-data; boundary={boundary}"
    if charset:
        content_type += f"; charset={charset}"
    return body, content_type


# ---------------------------------------------------------------------- the public pages


def public_url_names(patterns=None, namespace=None):
    """Every named URL pattern outside the admin, the API and anymail."""
    names = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in {"admin", "api"} or "anymail" in str(pattern.pattern):
                continue
            names += public_url_names(pattern.url_patterns, pattern.namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.append(pattern.name)
    return names


def _token(purpose, profile, newsletter=None):
    return tokens.token_make(purpose=purpose, profile=profile, newsletter=newsletter)


# URL name -> its path for ``jane`` on ``weekly``. The admin's login and queue page too.
PUBLIC_PAGES = {
    "home": lambda jane, weekly: "/",
    "subscribe": lambda jane, weekly: "/subscribe/",
    "unsubscribe": lambda jane, weekly: "/unsubscribe/",
    "preferences_request": lambda jane, weekly: "/preferences/",
    "preferences": lambda jane, weekly: f"/preferences/{_token(tokens.PREFERENCES, jane)}/",
    "preferences_data": lambda jane, weekly: (
        f"/preferences/{_token(tokens.PREFERENCES, jane)}/data.json"
    ),
    "confirm": lambda jane, weekly: f"/n/weekly/confirm/{_token(tokens.CONFIRM, jane, weekly)}/",
    "one_click_unsubscribe": lambda jane, weekly: (
        f"/n/weekly/unsubscribe/{_token(tokens.UNSUBSCRIBE, jane, weekly)}/"
    ),
    "newsletter": lambda jane, weekly: "/n/weekly/",
    "newsletter_feed": lambda jane, weekly: "/n/weekly/feed/",
    "issue": lambda jane, weekly: "/n/weekly/first/",
    "issue_image": lambda jane, weekly: f"/media/issues/1/{'0' * 32}.png",
    "admin_login": lambda jane, weekly: "/admin/login/",
    "queue_status": lambda jane, weekly: "/admin/queue/",
    "healthz": lambda jane, weekly: "/healthz",
    "account_newsletters": lambda jane, weekly: "/account/newsletters/",
    "embed_subscribe": lambda jane, weekly: "/embed/weekly/",
    "set_language": lambda jane, weekly: "/language/",
    "tracked_click": lambda jane, weekly: (
        f"/c/{TokenSigner(CLICK).make(issue_id=1, delivery_id=1, index=0)}"
    ),
    "tracked_open": lambda jane, weekly: (
        f"/o/{TokenSigner(OPEN).make(issue_id=1, delivery_id=1, index='o')}.gif"
    ),
}
FORM_PAGES = [
    "subscribe",
    "unsubscribe",
    "preferences_request",
    "preferences",
    "admin_login",
    "embed_subscribe",
    "set_language",
]
TOKEN_FORM_PAGES = ["confirm", "one_click_unsubscribe"]


def test_every_public_page_is_fuzzed():
    missing = set(public_url_names()) - set(PUBLIC_PAGES)
    assert not missing, f"add these pages to PUBLIC_PAGES: {sorted(missing)}"


def malformed_form_bodies():
    """(what, body, content type) of bodies no page should answer with a 5xx."""
    yield "utf-16", SIGN_UP.encode("utf-16"), f"{FORM}; charset=utf-16"
    yield "latin-1", b"user_email=j%E9@example.com", f"{FORM}; charset=latin-1"
    yield "unknown charset", SIGN_UP.encode(), f"{FORM}; charset=x-bogus"
    yield "not UTF-8", b"user_email=%FF%FE\xff\xfe&newsletter=\xc0\xaf", FORM
    yield "NUL", b"user_email=a%00@example.com&name=%00&newsletter=week%00ly", FORM
    yield "too many fields", "&".join(f"f{n}=x" for n in range(150)).encode(), FORM
    yield "oversized", SIGN_UP.encode() + b"&name=" + b"x" * 200_000, FORM
    yield "JSON", b'{"user_email": NaN}', "application/json"
    yield "no boundary", b"--x\r\n\r\n--x--", "multipart/form-data"
    yield (
        "truncated multipart",
        b"--sp\r\nContent-Disposition: form-data; name=",
        ("multipart/form-data; boundary=sp"),
    )
    body, content_type = multipart(fields=[("user_email", "jane@example.com")], charset="utf-16")
    yield "multipart utf-16", body, content_type
    body, content_type = multipart(
        fields=[("user_email", "jane@example.com"), ("newsletter", "weekly")],
        files=[("attachment", "cv.pdf", "%PDF-1.4 " * 100)],
    )
    yield "file", body, content_type


@pytest.mark.parametrize("name", sorted(PUBLIC_PAGES))
def test_no_public_page_answers_a_malformed_body_with_a_5xx(browser, jane, weekly, name):
    issue = issue_create(newsletter=weekly, subject="First", body_markdown="Hello")
    Issue.objects.filter(pk=issue.pk).update(slug="first", status=Issue.Status.SENT)
    url = PUBLIC_PAGES[name](jane, weekly)
    for what, body, content_type in malformed_form_bodies():
        for method in ("POST", "PUT", "PATCH"):
            response = send(browser, method, url, body, content_type)
            assert response.status_code < 500, (name, what, method, response.content[:300])


@pytest.mark.parametrize("name", FORM_PAGES)
@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "x-bogus", "UTF-16LE"])
def test_form_data_in_another_charset_gets_the_sites_400_page(browser, jane, name, charset):
    url = PUBLIC_PAGES[name](jane, jane.subscription_records.get().newsletter)
    codec = charset if charset != "x-bogus" else "utf-8"
    body = "user_email=jozef@example.com&name=Józef&newsletter=weekly".encode(codec)
    response = send(browser, "POST", url, body, f"{FORM}; charset={charset}")
    assert response.status_code == 400
    page = response.content.decode()
    assert f"charset={charset}" in page and "UTF-8" in page
    assert '<a class="brand" href="/">Signalpost</a>' in page  # the site's own page
    assert not Profile.objects.filter(email="jozef@example.com").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8"])
def test_form_data_declared_as_utf8_is_read(browser, weekly, charset):
    body = "user_email=jozef@example.com&name=Józef&newsletter=weekly".encode()
    response = send(browser, "POST", "/subscribe/", body, f"{FORM}; charset={charset}")
    assert response.status_code == 200
    run_form_requests()
    assert Profile.objects.get(email="jozef@example.com").name == "Józef"


def test_a_form_with_too_many_fields_gets_a_400_saying_so(browser, weekly):
    body = (SIGN_UP + "".join(f"&f{n}=x" for n in range(150))).encode()
    response = send(browser, "POST", "/subscribe/", body, FORM)
    assert response.status_code == 400
    assert "more than 100 fields" in response.content.decode()
    assert not Subscription.objects.exists()


def test_a_broken_multipart_body_gets_a_400(browser, weekly):
    response = send(browser, "POST", "/subscribe/", b"--x\r\n\r\n--x--", "multipart/form-data")
    assert response.status_code == 400
    assert "cannot be read" in response.content.decode()


# ------------------------------------------------------------------------------- files


@pytest.fixture
def spooled(monkeypatch):
    """The uploaded files Django starts storing (in memory or in a temporary file)."""
    started = []

    def recording(handler_class):
        class Recording(handler_class):
            def new_file(self, *args, **kwargs):
                super().new_file(*args, **kwargs)
                if getattr(self, "activated", True):
                    started.append(args[1])

        return Recording

    for name in ("MemoryFileUploadHandler", "TemporaryFileUploadHandler"):
        monkeypatch.setattr(uploadhandler, name, recording(getattr(uploadhandler, name)))
    return started


@pytest.mark.parametrize(
    "name",
    [
        "subscribe",
        "unsubscribe",
        "preferences_request",
        "preferences",
        "embed_subscribe",
        *TOKEN_FORM_PAGES,
    ],
)
def test_a_file_sent_to_a_form_is_refused_and_not_stored(browser, jane, weekly, spooled, name):
    body, content_type = multipart(
        fields=[("user_email", "new@example.com"), ("newsletter", "weekly")],
        files=[("photo", "me.jpg", "\xff\xd8" * 10_000)],
    )
    response = send(browser, "POST", PUBLIC_PAGES[name](jane, weekly), body, content_type)
    assert response.status_code == 400
    assert "photo: files are not accepted here." in response.content.decode()
    assert spooled == []
    assert not Profile.objects.filter(email="new@example.com").exists()
    assert Subscription.objects.get(profile=jane).status == Subscription.Status.ACTIVE


def test_a_large_file_is_refused_before_it_reaches_a_temporary_file(browser, spooled, settings):
    # The admin takes bodies of up to 6 MiB; a 3 MB file would be spooled to disk.
    body, content_type = multipart(
        fields=[("username", "admin"), ("password", "x")],
        files=[("upload", "big.bin", "x" * 3_000_000)],
    )
    assert len(body) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    response = send(browser, "POST", "/admin/login/", body, content_type)
    assert response.status_code == 400
    assert spooled == []


@pytest.mark.django_db(transaction=True)
def test_an_empty_file_input_is_no_file(browser, weekly):
    # Browsers send a file input left empty as a part without a filename.
    body, content_type = multipart(
        fields=[("user_email", "jane@example.com"), ("newsletter", "weekly")],
        files=[("photo", "", "")],
    )
    response = send(browser, "POST", "/subscribe/", body, content_type)
    assert response.status_code == 200
    run_form_requests()
    assert Subscription.objects.filter(profile__email="jane@example.com").exists()


@takes_files
def upload_size(request):
    return JsonResponse({"size": request.FILES["upload"].size})


urlpatterns = [path("upload/", upload_size)]


@pytest.mark.urls(__name__)
def test_a_view_marked_as_taking_files_gets_them(client):
    body, content_type = multipart(files=[("upload", "a.txt", "x" * 1000)])
    response = client.generic("POST", "/upload/", body, content_type=content_type)
    assert response.json() == {"size": 1000}


# ------------------------------------------------------------------------------- sizes


class UnreadBody(io.BytesIO):
    """A request body that fails the test if anyone reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/subscribe/", FORM),
        ("/unsubscribe/", "multipart/form-data; boundary=x"),
        ("/preferences/", FORM),
        ("/admin/login/", FORM),
        ("/api/v1/subscriptions", "application/json"),
        ("/api/v1/newsletters/weekly/imports", "text/csv"),
    ],
)
def test_a_100_mb_body_gets_413_before_it_is_read(browser, weekly, url, content_type):
    response = browser.generic(
        "POST",
        url,
        b"x",
        content_type=content_type,
        CONTENT_LENGTH=str(100 * 1024 * 1024),
        **{"wsgi.input": UnreadBody()},
        HTTP_X_CSRFTOKEN=CSRF_SECRET,
    )
    assert response.status_code == 413
    assert "104,857,600 bytes" in response.content.decode()
    assert not Profile.objects.exists()


def test_an_oversized_form_gets_the_sites_413_page(browser, weekly):
    body = SIGN_UP + "&name=" + "x" * 70_000
    response = send(browser, "POST", "/subscribe/", body.encode(), FORM)
    assert response.status_code == 413
    page = response.content.decode()
    assert "at most 65,536 are taken here" in page and '<a href="/subscribe/">' in page
    assert not Subscription.objects.exists()


def test_views_that_need_more_take_more(browser, token_api, weekly):
    # A CSV of about 2 MiB: over the API's 1 MiB, under the import's own 5 MiB.
    rows = "".join(f"person{n}@example.com,Person {n}\n" for n in range(60_000))
    body = ("email,name\n" + rows).encode()
    assert len(body) > 1024 * 1024
    response = token_api("POST", "/newsletters/weekly/imports", body, content_type="text/csv")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["imported"] == 60_000


def test_the_longest_issue_body_fits_the_apis_limit_however_it_is_escaped(token_api, weekly):
    # JSON escapes each of these characters as 6 bytes (\u00e9): the worst case.
    body_markdown = "\u00e9\u20ac" * (BODY_MAX_LENGTH // 2)
    body = json.dumps({"subject": "Long", "body_markdown": body_markdown}).encode()
    response = token_api("POST", "/newsletters/weekly/issues", body)
    assert response.status_code == 201, response.content[:300]


def test_every_view_named_in_the_body_limits_exists():
    resolver = get_resolver()
    names = set()
    for namespace, (_prefix, sub_resolver) in resolver.namespace_dict.items():
        names.add(namespace)
        names |= {
            f"{namespace}:{name}" for name in sub_resolver.reverse_dict if isinstance(name, str)
        }
    assert set(settings.SIGNALPOST_REQUEST_BODY_MAX_BYTES_BY_VIEW) <= names


# --------------------------------------------------------------------------------- API


@pytest.fixture
def token_api(db):
    token = api_token_create(name="fuzz")[1]
    client = Client(raise_request_exception=False)

    def call(method, url, body, content_type="application/json", **extra):
        return client.generic(
            method,
            f"/api/v1{url}",
            body,
            content_type=content_type,
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **extra,
        )

    return call


def api_operations():
    """(path, method, the JSON body's property names) of every operation in the OpenAPI document."""
    schema = api.get_openapi_schema(path_prefix="")
    components = schema.get("components", {}).get("schemas", {})
    operations = []
    for url, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            body_schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in body_schema:
                body_schema = components[body_schema["$ref"].rsplit("/", 1)[-1]]
            operations.append((url, method.upper(), sorted(body_schema.get("properties", {}))))
    return operations


OPERATIONS = api_operations()
DEEP = "[" * 100_000 + "]" * 100_000


def malformed_json_bodies(properties):
    """(what, body, content type) of bodies no operation should answer with a 5xx."""
    for raw in ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 30, "9" * 5000, DEEP]:
        yield f"top-level {raw[:10]}", raw.encode(), "application/json"
    for raw in ["[]", '"x"', "null", "true", "{", "{}"]:
        yield f"top-level {raw}", raw.encode(), "application/json"
    yield "not UTF-8", b'{"a": "\xff\xfe"}', "application/json"
    yield "UTF-16", json.dumps({p: "x" for p in properties}).encode("utf-16"), "application/json"
    yield "unknown charset", b"{}", "application/json; charset=x-bogus"
    yield "form", SIGN_UP.encode(), f"{FORM}; charset=utf-16"
    body, content_type = multipart(files=[("file", "a.csv", "email\na@example.com\n")])
    yield "file", body, content_type
    yield "oversized", b'{"a": "' + b"x" * (7 * 1024 * 1024) + b'"}', "application/json"
    values = {
        "NaN": "NaN",
        "Infinity": "Infinity",
        "-Infinity": "-Infinity",
        "1e999": "1e999",
        "2**63": str(2**63),
        "-2**63-1": str(-(2**63) - 1),
        "5000 digits": "9" * 5000,
        "deep": DEEP,
        "nested NaN": '{"k": NaN}',
        "nested huge": '{"k": 1e999, "l": [1e400]}',
        "list": '["x", NaN]',
        "object": '{"k": {"l": "m"}}',
        "true": "true",
        "long text": json.dumps("x" * 600_000),
        "NUL": '"\\u0000"',
    }
    for prop in properties:
        for what, raw in values.items():
            yield f"{prop}={what}", f'{{"{prop}": {raw}}}'.encode(), "application/json"


@pytest.fixture
def api_world(jane, weekly):
    """What the operations' path parameters name."""
    issue = issue_create(newsletter=weekly, subject="First", body_markdown="Hello")
    webhook = WebhookEndpoint.objects.create(url="https://hooks.example.com/x", secret="s" * 32)
    segment = segment_create(newsletter=weekly, name="All", rules={})
    automation = automation_create(
        newsletter=weekly,
        name="Welcome",
        trigger="subscribed",
        steps=[{"kind": "email", "config": {"subject": "Hi", "body_markdown": "Hello"}}],
    )
    return {
        "automation_id": str(automation.pk),
        "segment_id": str(segment.pk),
        "slug": "weekly",
        "newsletter": "weekly",
        "email": "jane@example.com",
        "issue_id": str(issue.pk),
        "webhook_id": str(webhook.pk),
    }


def test_the_fuzz_covers_every_api_operation():
    schema = json.loads(Client().get("/api/v1/openapi.json").content)
    assert len(OPERATIONS) == sum(len(item) for item in schema["paths"].values())
    assert ("/profiles/{email}", "PATCH", ["attributes", "name", "tags"]) in OPERATIONS


@pytest.mark.parametrize(("url", "method", "properties"), OPERATIONS)
def test_no_api_operation_answers_a_malformed_body_with_a_5xx(
    token_api, api_world, url, method, properties
):
    url = url.format(**api_world)
    for what, body, content_type in malformed_json_bodies(properties):
        response = token_api(method, url, body, content_type)
        assert response.status_code < 500, (method, url, what, response.content[:300])
        if response.status_code >= 400:
            assert response.json()["errors"], (method, url, what)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("NaN", "attributes.score"),
        ("Infinity", "attributes.score"),
        ("-Infinity", "attributes.score"),
        ("1e999", "attributes.score"),
        (str(2**63), "attributes.score"),
        (str(-(2**63) - 1), "attributes.score"),
        ("9" * 5000, "attributes.score"),
    ],
)
def test_a_number_no_database_keeps_is_a_400_naming_the_field(token_api, jane, value, field):
    Profile.objects.filter(pk=jane.pk).update(attributes={"score": 1})
    body = f'{{"name": "Jane", "attributes": {{"score": {value}}}}}'.encode()
    response = token_api("PATCH", "/profiles/jane@example.com", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert "finite" in response.json()["errors"][0]["message"]
    jane.refresh_from_db()
    assert (jane.name, jane.attributes) == ("", {"score": 1})


def test_the_largest_numbers_databases_keep_are_stored(token_api, jane):
    attributes = {"big": 2**63 - 1, "small": -(2**63), "float": 1.7976931348623157e308}
    body = json.dumps({"attributes": attributes}).encode()
    response = token_api("PATCH", "/profiles/jane@example.com", body)
    assert response.status_code == 200
    jane.refresh_from_db()
    # PostgreSQL's jsonb keeps numbers as numeric: the float comes back written out whole.
    assert (jane.attributes["big"], jane.attributes["small"]) == (2**63 - 1, -(2**63))
    assert float(jane.attributes["float"]) == attributes["float"]


def test_deeply_nested_json_is_a_400_saying_so(token_api, jane):
    response = token_api("PATCH", "/profiles/jane@example.com", DEEP.join(['{"a": ', "}"]).encode())
    assert response.status_code == 400
    assert "nests deeper than 32 levels" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("body", ["[1, 2]", '"x"', "null", "3"])
def test_a_body_that_is_not_a_json_object_is_a_400(token_api, jane, body):
    response = token_api("PATCH", "/profiles/jane@example.com", body.encode())
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "The body must be a JSON object."


def test_a_file_sent_to_the_api_is_refused_with_a_json_error(token_api, weekly, spooled):
    body, content_type = multipart(files=[("file", "list.csv", "email\na@example.com\n")])
    response = token_api("POST", "/newsletters/weekly/imports", body, content_type)
    assert response.status_code == 400
    error = {"field": "file", "message": "file: files are not accepted here."}
    assert response.json() == {"errors": [error]}
    assert spooled == [] and not Subscription.objects.exists()


def test_an_oversized_api_body_is_a_413_json_error(token_api, weekly):
    body = json.dumps({"email": "a@example.com", "newsletter": "weekly", "name": "x" * 2**20})
    response = token_api("POST", "/subscriptions", body.encode())
    assert response.status_code == 413
    assert "at most 1,048,576 are taken here" in response.json()["errors"][0]["message"]
    assert not Profile.objects.exists()


def test_an_import_over_its_limit_is_a_413(token_api, weekly):
    body = b"email\n" + b"someone@example.com\n" * 270_000
    assert len(body) > 5 * 1024 * 1024
    response = token_api("POST", "/newsletters/weekly/imports", body, "text/csv")
    assert response.status_code == 413
    assert not Subscription.objects.exists()


# ------------------------------------------------- the WSGI application and a real server


@pytest.fixture
def wsgi_call():
    """Call the WSGI application the web server serves; return (status line, body).

    As Django's test client does, requests do not close the test's connection.
    """
    from signalpost.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call(method, url, body, content_type):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": url,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        started = []
        chunks = application(environ, lambda status, headers: started.append(status))
        return started[0], b"".join(chunks)

    yield call
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("url", ["/subscribe/", "/api/v1/subscriptions"])
@pytest.mark.parametrize(
    "content_type", [f"{FORM}; charset*=x-bogus''utf-8", f"{FORM}; x=" + "y" * 10_000]
)
def test_an_unreadable_content_type_header_is_a_400(wsgi_call, weekly, url, content_type):
    status, body = wsgi_call("POST", url, SIGN_UP.encode(), content_type)
    assert status == "400 Bad Request"
    assert b"Invalid Content-Type header." in body


@pytest.fixture
def server(tmp_path):
    """The production web server (``signalpost serve``'s) serving Signalpost on a free port,
    its temporary files in ``tmp_path / "tmp"``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {
        **os.environ,
        "TMPDIR": str(temporary),
        # Nothing here reaches the database: every request is refused before a view runs.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    process = subprocess.Popen(
        web_command({"SIGNALPOST_ADDRESS": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}),
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.1)
    yield port, temporary
    process.terminate()
    process.wait(timeout=10)


def request_head(url, *, content_type, content_length, cookie=""):
    return (
        f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\nCookie: {cookie}\r\nX-CSRFToken: {CSRF_SECRET}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def answer_within(connection, seconds):
    """The response's bytes, or what arrived of it in ``seconds``."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received


def test_a_server_refuses_a_file_before_the_upload_ends_and_stores_none(server):
    port, temporary = server
    # A 5 MB file to the admin's login (which takes bodies up to 6 MiB): Django
    # would spool it to a temporary file from its first bytes on.
    body, content_type = multipart(
        fields=[("username", "admin"), ("password", "x")],
        files=[("upload", "big.bin", "x" * 5_000_000)],
    )
    with socket.create_connection(("127.0.0.1", port)) as connection:
        head = request_head(
            "/admin/login/",
            content_type=content_type,
            content_length=len(body),
            cookie=f"csrftoken={CSRF_SECRET}",
        )
        # Only the first 64 KiB, which Django reads as its first chunk.
        connection.sendall(head + body[:65536])
        answer = answer_within(connection, 5)
        assert list(temporary.iterdir()) == []
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"upload: files are not accepted here." in answer


def test_a_server_refuses_a_100_mb_body_without_reading_it(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            request_head("/subscribe/", content_type=FORM, content_length=100 * 2**20)
        )
        answer = answer_within(connection, 5)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"104,857,600 bytes" in answer


@pytest.mark.parametrize(
    "attributes", ['{"score": NaN}', '{"score": 1e999}', '{"n": 100000000000000000000}', "[1]"]
)
def test_the_admin_refuses_attributes_no_database_keeps(client, jane, attributes):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    url = f"/admin/accounts/profile/{jane.pk}/change/"
    form = {"email": jane.email, "name": "Jane", "attributes": attributes, "soft_bounce_count": 0}
    response = client.post(url, form)
    assert response.status_code == 200
    assert "attributes" in response.context["adminform"].form.errors
    jane.refresh_from_db()
    assert (jane.name, jane.attributes) == ("", {})
