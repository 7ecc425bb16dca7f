from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = "Refunds"

    def ready(self):
        from payments.customer_privacy import register_erasure_step, register_export_section
        from payments.signals import fraud_alert_confirmed

        from .customer_data import refund_requests_erase, refund_requests_export
        from .receivers import propose_refund_on_confirmed_warning

        # A customer's GDPR export and erasure include their refund requests.
        register_export_section("refund_requests", refund_requests_export)
        register_erasure_step("refund_requests", refund_requests_erase)

        fraud_alert_confirmed.connect(
            propose_refund_on_confirmed_warning, dispatch_uid="refunds.propose_fraud_refund"
        )
