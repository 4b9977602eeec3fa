"""schemathesis against /api/v1/openapi.json: no 500, no answer that breaks the schema.

schemathesis generates schema-shaped and schema-breaking JSON (positive and negative
modes); tests/test_malformed_requests.py sends what it cannot generate (other encodings,
NaN, deep nesting, huge numbers, files, oversized bodies) to the same operations.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from signalpost.api.tokens import api_token_create
from signalpost.wsgi import application
from tests.factories import make_newsletter

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@schemathesis.check
def refusals_are_json_errors(ctx, response, case):
    """Every 4xx is the API's JSON error: ``{"errors": [{"field", "message"}, ...]}``.

    Except ninja's own 405 for a method a path does not have (plain text, with Allow).
    """
    if 400 <= response.status_code < 500 and response.status_code != 405:
        errors = response.json().get("errors")
        if not errors or not all({"field", "message"} <= set(error) for error in errors):
            raise AssertionError(f"{response.status_code} without JSON errors: {response.text}")


@pytest.fixture
def in_process_requests():
    """As Django's test client does: requests must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(db, in_process_requests):
    make_newsletter(slug="weekly", opt_in="double")
    return {"Authorization": f"Bearer {api_token_create(name='schemathesis')[1]}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_never_fails_and_keeps_to_its_schema(case, bearer):
    # Business rules refuse some schema-valid input (a private webhook URL) and
    # unknown query parameters are ignored, as HTTP allows: those two checks
    # would flag correct behaviour. Every other check runs.
    case.call_and_validate(
        headers=bearer, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )
