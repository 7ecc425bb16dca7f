from . import audit_trail  # noqa: F401  (adds the money cell to the audit trail)
from .coupon import CouponAdmin
from .customer import CustomerAdmin
from .earnings import EarningAdjustmentAdmin, EarningEntryAdmin
from .fraud import FraudAlertAdmin
from .instructor import InstructorAdmin
from .other import PaymentMethodAdmin
from .payment import PaymentAdmin
from .payment_retry import PaymentRetryAdmin
from .payout import PayoutAdmin
from .payout_run import PayoutRunAdmin
from .subscription import SubscriptionAdmin
from .sync_run import SyncRunAdmin, SyncStateAdmin
from .transfer import TransferAdmin
from .webhook import WebhookEventAdmin

__all__ = [
    "CouponAdmin",
    "CustomerAdmin",
    "EarningAdjustmentAdmin",
    "EarningEntryAdmin",
    "FraudAlertAdmin",
    "InstructorAdmin",
    "PaymentAdmin",
    "PaymentMethodAdmin",
    "PaymentRetryAdmin",
    "PayoutAdmin",
    "PayoutRunAdmin",
    "SubscriptionAdmin",
    "SyncRunAdmin",
    "SyncStateAdmin",
    "TransferAdmin",
    "WebhookEventAdmin",
]
