"""The OpenAPI schema validates (what CI runs), is served to staff, and the tests' response
checker (tests/api/schema_check.py) really refuses what the schema does not document."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.http import JsonResponse

from tests.api import schema_check
from tests.api.harness import read_matrix

pytestmark = pytest.mark.django_db

EVERYONE_STAFF = {"superuser", "finance", "senior", "auditor", "staff", "read_only"}


def test_the_schema_validates_without_a_warning(tmp_path):
    """`manage.py spectacular --validate --fail-on-warn`, as CI runs it."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/transactions/" in text and "bearer" in text


def test_the_schema_and_its_pages_are_for_staff(api_roles):
    for url in ("/api/v1/schema/", "/api/v1/docs/", "/api/v1/redoc/"):
        statuses = {role: api_roles[role].get(url).status_code for role in read_matrix(())}
        assert statuses == read_matrix(EVERYONE_STAFF), url


def test_the_docs_pages_load_their_scripts_from_our_own_static_files(api_roles):
    """No CDN: the machines the back-office runs on may not reach one, and staff pages should
    not run third-party scripts."""
    for url in ("/api/v1/docs/", "/api/v1/redoc/"):
        html = api_roles["superuser"].get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html, url
        assert "cdn.jsdelivr" not in html and "unpkg.com" not in html, url


def test_every_operation_documents_the_error_shape():
    schema = schema_check.api_schema()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "403", "404", "429"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, status)
            assert ("409" in operation["responses"]) == (method != "get"), (path, method)


def test_money_is_one_component_in_minor_units():
    money = schema_check.api_schema()["components"]["schemas"]["Money"]
    assert money["properties"]["amount"]["type"] == "integer"
    assert set(money["required"]) == {"amount", "currency", "display"}


def _response(data, status=200):
    return JsonResponse(data, status=status, safe=False)


def test_the_checker_refuses_an_undocumented_field_a_wrong_type_and_an_undocumented_status():
    page = {"next": None, "previous": None, "results": []}
    schema_check.check_response("GET", "/api/v1/transactions/", _response(page))
    with pytest.raises(schema_check.SchemaMismatch, match="Additional properties"):
        schema_check.check_response("GET", "/api/v1/transactions/", _response({**page, "count": 3}))
    with pytest.raises(schema_check.SchemaMismatch, match="is not of type"):
        schema_check.check_response(
            "GET", "/api/v1/transactions/", _response({**page, "results": "none"})
        )
    with pytest.raises(schema_check.SchemaMismatch, match="status not documented"):
        schema_check.check_response("GET", "/api/v1/transactions/", _response(page, status=418))
    with pytest.raises(schema_check.SchemaMismatch, match="'fields' is a required property"):
        schema_check.check_response(
            "GET",
            "/api/v1/transactions/",
            _response({"error": {"code": "x", "message": "y"}}, status=403),
        )


def test_the_checker_reads_money_and_nullable_fields():
    row = {
        "id": 1,
        "amount": {"amount": 2500, "currency": "usd", "display": "$25.00"},
    }
    schema = schema_check.api_schema()["components"]["schemas"]["Transaction"]
    validator = schema_check.validator_for(schema)
    errors = [e.message for e in validator.iter_errors(row)]
    assert any("required property" in message for message in errors)  # the rest is missing
    assert not any("2500" in message for message in errors)
    bad = {**row, "amount": {"amount": 25.0, "currency": "usd", "display": "$25.00"}}
    errors = [e.message for e in validator.iter_errors(bad)]
    assert any("25.0 is not of type 'integer'" in message for message in errors)


def test_the_schema_is_served_as_json_too(api_roles):
    response = api_roles["auditor"].get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
    # The command's output and the served schema are the same document.
    buffer = io.StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=buffer)
    assert '"/api/v1/transactions/{id}/"' in buffer.getvalue()
