from django.apps import AppConfig


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
