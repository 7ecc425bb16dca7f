from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_schedules(**kwargs) -> None:
    """After `migrate`: the django-q2 schedules that keep rollups and receipts current."""
    from .jobs import ensure_report_schedules

    ensure_report_schedules()


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self):
        from payments import signals

        from . import receipts

        # Receipts and credit notes follow the domain events; dispatch_uid keeps a double
        # import from connecting twice (which would be harmless, but wasteful).
        signals.payment_succeeded.connect(
            receipts.on_payment_succeeded, dispatch_uid="reports.receipt_on_payment_succeeded"
        )
        signals.refund_processed.connect(
            receipts.on_refund_processed, dispatch_uid="reports.credit_note_on_refund_processed"
        )
        post_migrate.connect(_ensure_schedules, sender=self, dispatch_uid="reports.schedules")
