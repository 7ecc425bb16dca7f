"""Every API response in the tests is checked against the OpenAPI schema the server serves.

The schema is generated once per test session (drf-spectacular's generator, as at
/api/v1/schema/), converted from OpenAPI 3.0 to JSON Schema (`nullable` -> a null branch;
objects with `properties` refuse undocumented keys), and each response is validated against
the schema of its path, method, status and content type. A response whose status or content
type the schema does not document fails the test too."""

from __future__ import annotations

import functools
import json
import re

import jsonschema
from drf_spectacular.generators import SchemaGenerator

from backoffice.api.schema import ERROR_SCHEMA

API_PREFIX = "/api/v1/"
# The schema's own pages and the catch-all 404 are not operations.
UNCHECKED = re.compile(r"^/api/v1/(schema|docs|redoc)/")


class SchemaMismatch(AssertionError):
    pass


def _convert(node):
    """OpenAPI 3.0 schema object -> JSON Schema (draft 7), recursively."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _convert(value) for key, value in node.items() if key != "nullable"}
    for key in ("readOnly", "writeOnly", "example", "discriminator", "xml", "externalDocs"):
        converted.pop(key, None)
    if "$ref" in converted:
        converted["$ref"] = converted["$ref"].replace("#/components/schemas/", "#/definitions/")
    if converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def api_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@functools.cache
def _operations() -> list[tuple[re.Pattern, str, dict]]:
    """(path regex, path template, path item) for every documented path."""
    out = []
    for template, item in api_schema()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template))
        out.append((re.compile(f"^{pattern}$"), template, item))
    return out


@functools.cache
def _definitions() -> dict:
    return _convert(api_schema().get("components", {}).get("schemas", {}))


def documented_operation(path: str, method: str) -> tuple[str, dict] | None:
    # Literal paths before templated ones: `/refund-requests/queue/` is not `{id}`.
    for pattern, template, item in sorted(_operations(), key=lambda op: op[1].count("{")):
        if pattern.match(path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def check_response(method: str, path: str, response) -> None:
    """Raise SchemaMismatch unless `response` is what the schema documents."""
    if not path.startswith(API_PREFIX) or UNCHECKED.match(path):
        return
    found = documented_operation(path, method)
    if found is None:
        if response.status_code in (401, 404, 405):
            # Refused before routing (no such path/method): still the error shape.
            _validate_error(response, f"{method} {path}")
            return
        raise SchemaMismatch(f"{method} {path}: no such operation in the schema")
    template, operation = found
    where = f"{method} {template} -> {response.status_code}"
    if method.upper() == "HEAD":
        return
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        if response.status_code == 405:
            _validate_error(response, where)
            return
        raise SchemaMismatch(f"{where}: status not documented")
    content_type = response.get("Content-Type", "").split(";")[0].strip()
    if content_type == "text/html":
        return  # the browsable API: the documented JSON, rendered for people
    content = documented.get("content", {})
    if not content:
        if response.content:
            raise SchemaMismatch(f"{where}: a body where the schema documents none")
        return
    if content_type not in content:
        raise SchemaMismatch(f"{where}: content type {content_type!r} not in {sorted(content)}")
    if content_type != "application/json":
        return  # CSV, PDF: the type is what the schema promises; the bytes are tested elsewhere
    _validate(json.loads(_body(response)), content[content_type].get("schema", {}), where)


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        body = b"".join(response.streaming_content)
        # The test reads it too: give it the bytes back.
        response.streaming_content = [body]
        return body
    return response.content


# JSON Schema counts 25.0 as an integer; money in minor units must never be a float.
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: type(value) is int
    ),
)


def validator_for(schema: dict):
    return StrictValidator({**_convert(schema), "definitions": _definitions()})


def _validate(data, schema: dict, where: str) -> None:
    errors = sorted(validator_for(schema).iter_errors(data), key=lambda error: list(error.path))
    if errors:
        details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        raise SchemaMismatch(f"{where}: response does not match the schema: {details}")


def _validate_error(response, where: str) -> None:
    _validate(json.loads(response.content), ERROR_SCHEMA, where)
