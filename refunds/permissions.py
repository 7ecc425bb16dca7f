"""Who may do what to a refund request, and if not, why: one answer for the pages and the
services. A page asks before it shows a link or enables a button; refunds/services.py asks
again under the row lock and raises with the same message, so what a page says before the
click and what the server says after it cannot differ.

The functions read only what they are given (the user's permissions, the objects' fields);
the caller supplies the figures that need a query (the customer's block, the refundable amount
from refunds.selectors), locked when money is about to move.
"""

from __future__ import annotations

from backoffice.refusals import Refusal
from payments.models import Payment

from . import rules
from .models import RefundRequest

PERM_REQUEST = "refunds.add_refundrequest"
PERM_APPROVE = "refunds.approve_refundrequest"
PERM_APPROVE_LARGE = "refunds.approve_large_refundrequest"

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_NOT_PENDING = "Only pending requests can be approved or rejected; this one is {status}."
ERR_OWN_REQUEST = "You requested this refund, so someone else must approve it (four-eyes rule)."
ERR_NO_APPROVE_PERMISSION = "You do not have permission to approve or reject refund requests."
ERR_NO_REQUEST_PERMISSION = "You do not have permission to request refunds."
ERR_NOTHING_LEFT = (
    "Nothing left to refund: the rest is already refunded, approved or asked for in a pending "
    "request."
)

APPROVE = "approve"
REJECT = "reject"


def request_refusal(*, user, payment: Payment, refundable: int | None = None) -> Refusal | None:
    """Why `user` may not request a refund of `payment`, or None when they may. `user` None
    is the system (fraud proposals): no permission is needed. `refundable` (minor units, from
    refunds.selectors.payment_refundability) is checked when given: 0 means nothing is left."""
    if user is not None and not user.has_perm(PERM_REQUEST):
        return Refusal(ERR_NO_REQUEST_PERMISSION, permission=True)
    blocked = rules.payment_blocked_reason(payment)
    if blocked:
        return Refusal(blocked)
    if refundable is not None and refundable <= 0:
        return Refusal(ERR_NOTHING_LEFT)
    return None


def decision_refusal(
    *,
    user,
    refund_request: RefundRequest,
    decision: str,
    customer_blocked: bool | None = None,
) -> Refusal | None:
    """Why `user` may not approve or reject (`decision`) `refund_request`, or None when they
    may, as far as who and which request: the refundable amount is checked by the service
    under the lock. Approval also needs someone other than the requester (four-eyes) and,
    above the currency's senior limit or for a blocked customer, the senior permission;
    `customer_blocked` None skips that check (the caller does not know it)."""
    if user is None or not user.has_perm(PERM_APPROVE):
        return Refusal(ERR_NO_APPROVE_PERMISSION, permission=True)
    if refund_request.status != RefundRequest.Status.PENDING:
        return Refusal(ERR_NOT_PENDING.format(status=refund_request.get_status_display().lower()))
    if decision != APPROVE:
        return None
    if refund_request.requested_by_id is not None and refund_request.requested_by_id == user.pk:
        return Refusal(ERR_OWN_REQUEST)
    if (
        customer_blocked is not None
        and rules.needs_senior_approval(
            amount=refund_request.amount,
            currency=refund_request.currency,
            customer_blocked=customer_blocked,
        )
        and not user.has_perm(PERM_APPROVE_LARGE)
    ):
        return Refusal(
            rules.senior_message(
                refund_request.currency,
                amount=refund_request.amount,
                customer_blocked=customer_blocked,
            ),
            permission=True,
        )
    return None
