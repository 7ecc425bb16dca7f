from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from backoffice import errors
from backoffice.step_up import step_up_view
from payments.webhooks import stripe_webhook

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("favicon.ico", errors.favicon, name="favicon"),
    # A fresh second-factor code before a money-moving action (backoffice/guard.py).
    path("admin/step-up/", admin.site.admin_view(step_up_view), name="step_up"),
    path("admin/", admin.site.urls),
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
    # The JSON API: every app's api.py, the schema at /api/v1/schema/ (backoffice/api/).
    path("api/v1/", include("backoffice.api.urls")),
]

# Error pages in the admin's look (backoffice/errors.py); with DEBUG off, which the demo runs.
handler403 = "backoffice.errors.permission_denied"
handler404 = "backoffice.errors.page_not_found"
handler500 = "backoffice.errors.server_error"
