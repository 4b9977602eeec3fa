import pytest
from django.db import connection

from tests.factories import make_newsletter


@pytest.fixture
def newsletter(db):
    """A public, single opt-in newsletter."""
    return make_newsletter(slug="weekly", name="The Weekly")


@pytest.fixture
def double_opt_in_newsletter(db):
    return make_newsletter(slug="careful", name="The Careful", opt_in="double")


def on_postgresql():
    return connection.vendor == "postgresql"
