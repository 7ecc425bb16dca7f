"""Bad input never answers 500: every changelist of every registered ModelAdmin, with every
parameter it reads set to garbage, answers the page (with a message) or a redirect to it; every
object page, and every page an admin mounts in get_urls, answers a bad object id with a 404 or
a redirect with a message. See tests/backoffice/bad_input_support.py for the values."""

import pytest

from tests.backoffice.bad_input_support import (
    registered_admins,
    sweep_changelist,
    sweep_object_pages,
)

pytestmark = pytest.mark.django_db

ADMINS = registered_admins()


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=[m._meta.label for m, _ in ADMINS])
def test_no_changelist_parameter_answers_garbage_with_a_server_error(
    admin_client, superuser, model, model_admin
):
    assert sweep_changelist(admin_client, model_admin, superuser) > 0


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=[m._meta.label for m, _ in ADMINS])
def test_no_object_page_answers_a_bad_id_with_a_server_error(admin_client, model, model_admin):
    assert sweep_object_pages(admin_client, model_admin) > 0
