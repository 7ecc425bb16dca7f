from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ManagementConfig(AppConfig):
    name = "management"
    verbose_name = "Operations"

    def ready(self):
        from .schedules import ensure_job_schedules_after_migrate

        post_migrate.connect(
            ensure_job_schedules_after_migrate, dispatch_uid="management.job_schedules"
        )
