from .balance import BalanceEntry, StudentBalance
from .customer import Customer
from .dispute import Dispute
from .dispute_alert import DisputeDeadlineAlert
from .fraud_alert import FraudAlert
from .instructor import Instructor
from .payment import Payment
from .payment_method import PaymentMethod, PaymentMethodType
from .payment_retry import PaymentRetry
from .refund import Refund
from .sync_run import JobLock, SyncObjectType, SyncRun, SyncState, sync_run_lock_ttl
from .webhook_event import WebhookEvent

__all__ = [
    "BalanceEntry",
    "Customer",
    "Dispute",
    "DisputeDeadlineAlert",
    "FraudAlert",
    "Instructor",
    "JobLock",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "PaymentRetry",
    "Refund",
    "StudentBalance",
    "SyncObjectType",
    "SyncRun",
    "SyncState",
    "WebhookEvent",
    "sync_run_lock_ttl",
]
