from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_save


class ManagementConfig(AppConfig):
    name = "management"
    verbose_name = "Operations"

    def ready(self):
        from django_q.models import Schedule
        from django_q.signals import pre_enqueue

        from .schedule_rules import (
            check_schedule_before_save,
            check_task_before_enqueue,
            install_checked_worker,
            install_cluster_scheduler,
        )
        from .schedules import ensure_job_schedules_after_migrate

        post_migrate.connect(
            ensure_job_schedules_after_migrate, dispatch_uid="management.job_schedules"
        )
        # Schedules and tasks run only the job registry (management/schedule_rules.py).
        pre_save.connect(
            check_schedule_before_save, sender=Schedule, dispatch_uid="management.schedule_rules"
        )
        pre_enqueue.connect(check_task_before_enqueue, dispatch_uid="management.task_rules")
        install_cluster_scheduler()
        install_checked_worker()
