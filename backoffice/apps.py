from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.core import checks


class BackofficeConfig(AppConfig):
    default = True  # "backoffice" in INSTALLED_APPS; the admin's config below is named there
    name = "backoffice"
    verbose_name = "Back-office"

    def ready(self):
        # Registers the token scheme with drf-spectacular (an extension registers on import).
        from backoffice.api import schema  # noqa: F401

        # `__in` on integer columns ignores values past the column's range (lookups.py).
        from . import lookups  # noqa: F401
        from .allow_list import check_allowed_cidrs

        checks.register(check_allowed_cidrs)


class BackofficeAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site as admin.site: its login asks for the second factor
    and its pages need a verified session where TWO_FACTOR_REQUIRED is on (admin_site.py)."""

    default = False
    default_site = "backoffice.admin_site.BackofficeAdminSite"
