"""The API's bad-input sweep (test_bad_input_api.py) on PostgreSQL, where an integer past a
column's range is a DataError and a NUL in a string is refused by the server."""

import pytest

from tests.api.test_bad_input_api import ENDPOINTS, sweep_endpoint

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.mark.parametrize(
    ("prefix", "viewset", "basename"), ENDPOINTS, ids=[entry[2] for entry in ENDPOINTS]
)
def test_no_api_list_answers_garbage_with_a_server_error(api_roles, prefix, viewset, basename):
    sweep_endpoint(api_roles["superuser"], prefix, viewset, basename)
