from .balance import BalanceEntry, StudentBalance
from .customer import Customer
from .dispute import Dispute
from .fraud_alert import FraudAlert
from .instructor import Instructor
from .payment import Payment
from .payment_method import PaymentMethod, PaymentMethodType
from .refund import Refund
from .webhook_event import WebhookEvent

__all__ = [
    "BalanceEntry",
    "Customer",
    "Dispute",
    "FraudAlert",
    "Instructor",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "Refund",
    "StudentBalance",
    "WebhookEvent",
]

# The Stripe sync's state and run record (moved here from the management app).
from .sync_run import JobLock, SyncObjectType, SyncRun, SyncState, sync_run_lock_ttl

__all__ += ["JobLock", "SyncObjectType", "SyncRun", "SyncState", "sync_run_lock_ttl"]
