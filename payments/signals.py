"""Domain events other apps react to (receipts, notifications) without the sender knowing.

Sent with transaction.on_commit by whoever makes the change, so receivers only ever see
committed state.
"""

from django.dispatch import Signal

# kwargs: payment (payments.Payment) - it has just become succeeded locally.
payment_succeeded = Signal()
# kwargs: payment, refund_amount (minor units), stripe_refund_id, refund_request (or None).
refund_processed = Signal()
# kwargs: alert (payments.FraudAlert) - a reviewer has just resolved it as confirmed fraud.
# refunds may propose a refund (FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING); payments does not
# know. Sent once per confirmation; receivers must still be idempotent (at-least-once).
fraud_alert_confirmed = Signal()
