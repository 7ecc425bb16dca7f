"""The reports app's endpoints (found by backoffice/api/urls.py). Each module below registers
its viewsets into backoffice.api.registry.api_router when imported."""

from . import api_dashboard, api_receipts  # noqa: F401
