"""Where apps put their endpoints. Each app's `api.py` (found by backoffice/api/urls.py with
autodiscover_modules) registers into these, so this framework imports no app:

    from backoffice.api.registry import api_router, api_urlpatterns
    api_router.register("transactions", TransactionViewSet, basename="transaction")
    api_urlpatterns.append(path("exports/transactions.csv", ..., name="export-transactions-csv"))

URL names are namespaced "api:" (reverse("api:transaction-list"))."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

api_router = SimpleRouter(trailing_slash=True)
# Plain views (exports, downloads) that are not viewsets.
api_urlpatterns: list = []
