"""OpenAPI extensions: how the token authentication appears in the schema."""

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
