"""Fixtures of the API tests: the role clients (tests/api/harness.py), and pytest-django's
`client` swapped for one whose API responses are checked against the schema."""

import pytest
from django.core.cache import caches

from tests.api.harness import SchemaCheckedClient, make_api_roles


@pytest.fixture
def api_roles(db):
    return make_api_roles()


@pytest.fixture
def client():
    """A session client (the browsable API, Swagger), its API responses schema-checked."""
    return SchemaCheckedClient()


@pytest.fixture(autouse=True)
def _fresh_throttle_counters(settings):
    """Each test starts with empty throttle windows (database rows roll back with the test;
    a cache, when one is named, is cleared)."""
    if settings.API_THROTTLE_CACHE:
        caches[settings.API_THROTTLE_CACHE].clear()
