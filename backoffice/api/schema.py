"""OpenAPI extensions: how the token authentication appears in the schema."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "backoffice.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A staff API token made in the admin (Back-office > API tokens): "
                "`Authorization: Bearer bo_...`."
            ),
        }


class AllowListSessionScheme(SessionScheme):
    """The session cookie, as drf-spectacular shows DRF's (ours also asks the allow-list)."""

    target_class = "backoffice.api.authentication.AllowListSessionAuthentication"
    priority = 0


# The statuses every operation may answer with the error shape (backoffice/api/errors.py);
# writes may also answer 409 (a conflict, an idempotency key reused or in progress).
_ERROR_DESCRIPTIONS = {
    "400": "Bad input (see error.fields).",
    "401": "No credentials, or a bad, revoked or expired token.",
    "403": "A rule or a permission refuses it (error.message says which).",
    "404": "No such object.",
    "409": "A conflict: the state moved on, or an Idempotency-Key was reused.",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
}
_WRITE_METHODS = {"post", "put", "patch", "delete"}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "Stable, for programs."},
                "message": {"type": "string", "description": "For people."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "The inputs at fault, each with its messages.",
                },
            },
        }
    },
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the Error component and the error responses on
    every operation, so clients (and our schema tests) know the shape of every answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, description in _ERROR_DESCRIPTIONS.items():
                if status == "409" and method not in _WRITE_METHODS:
                    continue
                operation["responses"].setdefault(
                    status,
                    {"content": {"application/json": {"schema": ref}}, "description": description},
                )
    return result
