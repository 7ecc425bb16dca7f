"""What refunds does when payments says something happened (payments never imports refunds).
Connected in refunds.apps.RefundsConfig.ready()."""

from __future__ import annotations

import logging

from django.conf import settings

from payments.models import FraudAlert

from .services import refund_request_propose_for_fraud

logger = logging.getLogger(__name__)


def propose_refund_on_confirmed_warning(sender, *, alert: FraudAlert, **kwargs) -> None:
    """FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING: a confirmed early fraud warning gets a full
    refund proposed to the queue (once per alert; the service skips what cannot be refunded).
    """
    if not settings.FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING:
        return
    if alert.source != FraudAlert.Source.EARLY_FRAUD_WARNING:
        return
    proposed = refund_request_propose_for_fraud(alert=alert)
    if proposed is not None:
        logger.info("fraud alert %s: proposed %s", alert.pk, proposed)
