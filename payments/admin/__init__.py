from . import audit_trail  # noqa: F401  (adds the money cell to the audit trail)
from .coupon import CouponAdmin
from .customer import CustomerAdmin
from .customer_adjustment import CustomerAdjustmentAdmin
from .earnings import EarningAdjustmentAdmin, EarningEntryAdmin
from .fraud import FraudAlertAdmin
from .hours import BalanceEntryAdmin, LessonAdmin, StudentBalanceAdmin
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
    "BalanceEntryAdmin",
    "CouponAdmin",
    "CustomerAdjustmentAdmin",
    "CustomerAdmin",
    "EarningAdjustmentAdmin",
    "EarningEntryAdmin",
    "FraudAlertAdmin",
    "InstructorAdmin",
    "LessonAdmin",
    "PaymentAdmin",
    "PaymentMethodAdmin",
    "PaymentRetryAdmin",
    "PayoutAdmin",
    "PayoutRunAdmin",
    "StudentBalanceAdmin",
    "SubscriptionAdmin",
    "SyncRunAdmin",
    "SyncStateAdmin",
    "TransferAdmin",
    "WebhookEventAdmin",
]
