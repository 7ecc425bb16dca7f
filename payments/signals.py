"""Domain events other apps react to (receipts, notifications) without the sender knowing.

Sent with transaction.on_commit by whoever makes the change, so receivers only ever see
committed state.
"""

from django.dispatch import Signal

# kwargs: payment (payments.Payment) - it has just become succeeded locally.
payment_succeeded = Signal()
# kwargs: payment, refund_amount (minor units), stripe_refund_id, refund_request (or None).
refund_processed = Signal()
