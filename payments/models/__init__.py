from .balance import BalanceEntry, HourDraw, HourPackage, Lesson, StudentBalance
from .billing_action import BillingAction
from .coupon import Coupon, CouponCurrency, CouponRedemption, PromotionCode
from .customer import Customer
from .customer_adjustment import CustomerAdjustment
from .dispute import Dispute
from .dispute_alert import DisputeDeadlineAlert
from .dispute_response import DisputeResponse
from .fraud_alert import UNRESOLVED_STATUSES, FraudAlert, FraudRule, FraudSeverity
from .fraud_rule_failure import FraudRuleFailure
from .instructor import Instructor
from .payment import Payment
from .payment_method import PaymentMethod, PaymentMethodType
from .payment_retry import PaymentRetry
from .payout import (
    EarningAdjustment,
    EarningEntry,
    Payout,
    PayoutRun,
    Transfer,
    TransferReversal,
)
from .refund import Refund
from .subscription import Subscription
from .sync_run import JobLock, SyncObjectType, SyncRun, SyncState, sync_run_lock_ttl
from .webhook_event import WebhookEvent

__all__ = [
    "UNRESOLVED_STATUSES",
    "BalanceEntry",
    "BillingAction",
    "Coupon",
    "CouponCurrency",
    "CouponRedemption",
    "Customer",
    "CustomerAdjustment",
    "Dispute",
    "DisputeDeadlineAlert",
    "DisputeResponse",
    "EarningAdjustment",
    "EarningEntry",
    "FraudAlert",
    "FraudRule",
    "FraudRuleFailure",
    "FraudSeverity",
    "HourDraw",
    "HourPackage",
    "Instructor",
    "JobLock",
    "Lesson",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "PaymentRetry",
    "Payout",
    "PayoutRun",
    "PromotionCode",
    "Refund",
    "StudentBalance",
    "Subscription",
    "SyncObjectType",
    "SyncRun",
    "SyncState",
    "Transfer",
    "TransferReversal",
    "WebhookEvent",
    "sync_run_lock_ttl",
]
