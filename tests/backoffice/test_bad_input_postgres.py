"""On PostgreSQL, the same sweep as test_bad_input.py: there an integer past a column's range
is NumericValueOutOfRange (a DataError) and a NUL in a string is refused by the server, where
SQLite raised OverflowError or stored it."""

import pytest

from tests.backoffice.bad_input_support import (
    registered_admins,
    sweep_changelist,
    sweep_object_pages,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ADMINS = registered_admins()
IDS = [model._meta.label for model, _ in ADMINS]


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=IDS)
def test_no_changelist_parameter_answers_garbage_with_a_server_error(
    admin_client, superuser, model, model_admin
):
    assert sweep_changelist(admin_client, model_admin, superuser) > 0


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=IDS)
def test_no_object_page_answers_a_bad_id_with_a_server_error(admin_client, model, model_admin):
    assert sweep_object_pages(admin_client, model_admin) > 0
