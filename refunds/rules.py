"""The refund rules, once: pure functions of figures already read, and the messages staff see.
No queries and no writes: refunds/selectors.py reads the figures, refunds/services.py decides
and writes with them, both import this module and neither imports the other's callers.

What can be refunded, in minor units of the payment's currency (all under a row lock on the
payment when money is about to move):

    refundable = captured - processed - in flight - pending ahead

- processed: what Stripe refunded or is refunding (a refund Stripe reports as pending counts);
- in flight: approved or processing requests, promised but not yet refunded;
- pending ahead: pending requests that hold a claim before this one. A NEW request counts every
  pending request (asking twice for the same money is refused when it is asked); deciding a
  pending request counts the pending requests made before it, not itself nor younger ones
  (first come, first served: the younger ones were checked against it when they were made,
  and an outside refund that leaves too little for all of them never blocks every approval);
  processing an approved request counts none (it holds its share since approval).

A payment that failed, was canceled, is disputed, was never captured or is fully refunded is
never refunded, whatever the amount; processing checks this again under the lock, because a
dispute can arrive between approval and processing.

Money thresholds (LARGE in the queue, senior approval) are per currency; a currency with no
configured value gets 0, the strictest rule (payments.money.threshold_minor).

A refund to a blocked customer (payments.services.customer_block) needs a senior approver
whatever its amount, judged when the request is decided: a request made before the block is
caught too.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from django.conf import settings

from payments.models import Payment
from payments.money import format_money, threshold_minor

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_AMOUNT_NOT_POSITIVE = "The refund amount must be greater than zero."
ERR_AMOUNT_NOT_MINOR_UNITS = "The refund amount must be a whole number of minor units."
ERR_AMOUNT_ABOVE_REFUNDABLE = (
    "The refund amount {amount} is more than the {refundable} that can still be refunded on "
    "this payment."
)
ERR_CURRENCY_MISMATCH = (
    "This payment is in {payment_currency}: a refund must be in the same currency, not {currency}."
)
ERR_PAYMENT_FAILED = "This payment failed: nothing was captured, so nothing can be refunded."
ERR_PAYMENT_CANCELED = (
    "This payment was canceled: nothing was captured, so nothing can be refunded."
)
ERR_PAYMENT_DISPUTED = (
    "This payment is disputed: the money is settled through the dispute, not a refund."
)
ERR_PAYMENT_NOT_CAPTURED = "This payment has not been captured, so nothing can be refunded."
ERR_PAYMENT_FULLY_REFUNDED = "This payment has already been refunded in full."
ERR_NEEDS_SENIOR = "Refunds above {limit} need a senior approver."
ERR_NEEDS_SENIOR_BLOCKED = (
    "The customer is blocked: refunds to them need a senior approver, whatever the amount."
)
ERR_NEEDS_SENIOR_ANY = (
    "Refunds in {currency} need a senior approver: no senior-approval limit is configured for "
    "this currency."
)
# Shown on a request that processing stopped before any Stripe call (status canceled).
CANCELED_BEFORE_STRIPE = "Not refunded: {reason}"

BLOCKED_MESSAGES = {
    Payment.Status.FAILED: ERR_PAYMENT_FAILED,
    Payment.Status.CANCELED: ERR_PAYMENT_CANCELED,
    Payment.Status.DISPUTED: ERR_PAYMENT_DISPUTED,
}
# Payments in these statuses can never be refunded through a request.
BLOCKED_PAYMENT_STATUSES = frozenset(BLOCKED_MESSAGES)


def payment_blocked_reason(payment: Payment) -> str:
    """Why no refund can be made on `payment` at all, or "" when refunds are possible."""
    if payment.status in BLOCKED_MESSAGES:
        return BLOCKED_MESSAGES[payment.status]
    if not payment.is_captured:
        return ERR_PAYMENT_NOT_CAPTURED
    if payment.amount_refunded >= payment.amount:
        return ERR_PAYMENT_FULLY_REFUNDED
    return ""


def refundable_amount(*, captured: int, processed: int, in_flight: int, pending_ahead: int) -> int:
    """captured - processed - in flight - pending ahead, never below 0 (see the module
    docstring for which pending requests are ahead)."""
    return max(0, captured - processed - in_flight - pending_ahead)


def amount_error(*, amount, currency: str | None, payment_currency: str, refundable: int) -> str:
    """Why `amount` (minor units of `currency`; None = the payment's) cannot be refunded from
    `refundable`, or "" when it can."""
    if currency is not None and currency.strip().lower() != payment_currency:
        return ERR_CURRENCY_MISMATCH.format(
            payment_currency=payment_currency.upper(), currency=currency.strip().upper()
        )
    if not isinstance(amount, int) or isinstance(amount, bool):
        return ERR_AMOUNT_NOT_MINOR_UNITS
    if amount <= 0:
        return ERR_AMOUNT_NOT_POSITIVE
    if amount > refundable:
        return ERR_AMOUNT_ABOVE_REFUNDABLE.format(
            amount=format_money(amount, payment_currency),
            refundable=format_money(refundable, payment_currency),
        )
    return ""


# --- Thresholds ---------------------------------------------------------------------------------


def amount_above(*, amount: int, currency: str, thresholds: Mapping[str, str | Decimal]) -> bool:
    """amount (minor units) > the threshold of its currency (0 when not configured). The
    Python twin of refunds.selectors.amount_above_q: the two must agree row for row."""
    return amount > threshold_minor(thresholds, currency)


def is_large(*, amount: int, currency: str) -> bool:
    """Above REFUND_LARGE_AMOUNT in its currency (the LARGE tier of the queue, when young)."""
    return amount_above(amount=amount, currency=currency, thresholds=settings.REFUND_LARGE_AMOUNT)


def senior_limit_minor(currency: str) -> int:
    """REFUND_SENIOR_APPROVAL_ABOVE in minor units of `currency` (0 when not configured)."""
    return threshold_minor(settings.REFUND_SENIOR_APPROVAL_ABOVE, currency)


def needs_senior_approval(*, amount: int, currency: str, customer_blocked: bool = False) -> bool:
    """A request of `amount` minor units (to a customer blocked or not) needs the
    senior-approver permission."""
    return customer_blocked or amount > senior_limit_minor(currency)


def senior_message(currency: str, *, amount: int = 0, customer_blocked: bool = False) -> str:
    """What an approver without the senior permission is told, in `currency`: the amount
    rule when the amount alone needs a senior, else the blocked-customer rule."""
    limit = senior_limit_minor(currency)
    if customer_blocked and amount <= limit:
        return ERR_NEEDS_SENIOR_BLOCKED
    if limit == 0:
        return ERR_NEEDS_SENIOR_ANY.format(currency=currency.upper())
    return ERR_NEEDS_SENIOR.format(limit=format_money(limit, currency))
