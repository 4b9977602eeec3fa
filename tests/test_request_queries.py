"""The public subscribe POST, the benchmark's request, keeps its number of queries.

Signalpost inside a host site (docs/integrate.md) adds a settings layer, a configurable
base template and the account component: none of them may cost the request path a query.
"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db

# The rate limits live in the cache, the form reads the newsletter once, the subscription
# is queued as one task row by one statement (no transaction or savepoint of its own).
SUBSCRIBE_POST_QUERIES = 2  # the newsletter, the task row


def test_subscribe_post_costs_no_extra_query():
    make_newsletter(slug="weekly", name="The Weekly", opt_in="double")
    client = Client()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/subscribe/", {"user_email": "jane@example.com", "newsletter": "weekly"}
        )
    assert response.status_code == 200
    assert len(queries) == SUBSCRIBE_POST_QUERIES
