"""/api/v1/: every app's endpoints (their api.py modules), the OpenAPI schema and its pages."""

from django.conf import settings
from django.urls import path, re_path
from django.utils.module_loading import autodiscover_modules
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .errors import json_not_found
from .registry import api_router, api_urlpatterns

# Imports payments.api, refunds.api, reports.api (each registers its endpoints).
autodiscover_modules("api")

app_name = "api"

# Redoc's menu shows an "API docs by Redocly" badge whose image its bundle loads from
# cdn.redoc.ly (hard-coded, no option turns it off): that one image is allowed on that one page,
# so the Content-Security-Policy reports no violation there. Everything else stays 'self'.
REDOC_CSP = {
    **settings.SECURE_CSP,
    "img-src": [*settings.SECURE_CSP.get("img-src", []), "https://cdn.redoc.ly"],
}

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path(
        "redoc/",
        csp_override(REDOC_CSP)(SpectacularRedocView.as_view(url_name="api:schema")),
        name="redoc",
    ),
    *api_urlpatterns,
    *api_router.urls,
    # Anything else under /api/v1/ is the API's 404 (JSON), not the admin's HTML page.
    re_path(r"^.*$", json_not_found),
]
