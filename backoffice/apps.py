from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back-office"

    def ready(self):
        # Registers the token scheme with drf-spectacular (an extension registers on import).
        from backoffice.api import schema  # noqa: F401
