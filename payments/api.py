"""The payments app's endpoints (found by backoffice/api/urls.py's autodiscover_modules).
Each module below registers its viewsets into backoffice.api.registry.api_router on import."""

from . import api_transactions  # noqa: F401
