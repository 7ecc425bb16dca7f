"""The payments app's endpoints (found by backoffice/api/urls.py's autodiscover_modules).
Each module below registers its viewsets into backoffice.api.registry.api_router on import."""

from . import (  # noqa: F401
    api_audit,
    api_coupons,
    api_customer_adjustments,
    api_disputes,
    api_earnings,
    api_fraud,
    api_lessons,
    api_payouts,
    api_retries,
    api_transactions,
    api_webhooks,
)
