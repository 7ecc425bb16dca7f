from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = "Refunds"

    def ready(self):
        from payments.signals import fraud_alert_confirmed

        from .receivers import propose_refund_on_confirmed_warning

        fraud_alert_confirmed.connect(
            propose_refund_on_confirmed_warning, dispatch_uid="refunds.propose_fraud_refund"
        )
