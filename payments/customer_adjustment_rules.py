"""Who may request, approve or reject a manual customer adjustment, and if not, why: one answer
for the pages, the API and the services. A page asks before it offers a button; the service
(payments/services/customer_adjustments.py) asks again under the row lock and raises with the
same message, so what the page says and what the server does cannot differ.

- requesting needs payments.add_customeradjustment;
- deciding (approve or reject) needs payments.approve_customeradjustment, and a pending
  adjustment;
- approving needs someone other than the requester (four-eyes), and the senior permission
  payments.approve_large_customeradjustment for money above
  CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE in its currency, hours above
  CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE_MINUTES, or a credit to a blocked customer (as a
  refund to one needs a senior);
- rejecting one's own request is allowed: it is how a requester withdraws a mistake.

Reads only what it is given (the user's permissions, the adjustment's fields and its
customer's block state).
"""

from __future__ import annotations

from django.conf import settings

from backoffice.refusals import Refusal
from payments.models import CustomerAdjustment
from payments.money import format_money, threshold_minor

PERM_VIEW = "payments.view_customeradjustment"
PERM_REQUEST = "payments.add_customeradjustment"
PERM_APPROVE = "payments.approve_customeradjustment"
PERM_APPROVE_LARGE = "payments.approve_large_customeradjustment"

APPROVE = "approve"
REJECT = "reject"

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_NO_REQUEST_PERMISSION = "You do not have permission to request customer adjustments."
ERR_NO_APPROVE_PERMISSION = "You do not have permission to approve or reject customer adjustments."
ERR_NOT_PENDING = "Only pending adjustments can be approved or rejected; this one is {status}."
ERR_OWN_REQUEST = "You requested this adjustment, so someone else must approve it (four-eyes rule)."
ERR_SENIOR = "Adjustments above {limit} need a senior approver."
ERR_SENIOR_BLOCKED = "A credit to a blocked customer needs a senior approver."


def senior_limit(currency: str) -> int:
    """Minor units above which approving a money adjustment needs PERM_APPROVE_LARGE."""
    return threshold_minor(settings.CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE, currency)


def senior_limit_minutes() -> int:
    """Minutes above which approving an hours adjustment needs PERM_APPROVE_LARGE."""
    return int(settings.CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE_MINUTES)


def format_minutes(minutes: int) -> str:
    """600 -> '10 h', 90 -> '1 h 30 min', 45 -> '45 min' (the sign is the caller's)."""
    hours, rest = divmod(abs(int(minutes)), 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    if hours:
        return f"{hours} h"
    return f"{rest} min"


def senior_reason(adjustment: CustomerAdjustment) -> str:
    """Why approving `adjustment` needs a senior, or "" when it does not. A credit to a
    blocked customer reads the customer (select_related it on lists)."""
    if adjustment.unit == CustomerAdjustment.Unit.MONEY:
        limit = senior_limit(adjustment.currency)
        if adjustment.amount > limit:
            return ERR_SENIOR.format(limit=format_money(limit, adjustment.currency))
    elif adjustment.minutes > senior_limit_minutes():
        return ERR_SENIOR.format(limit=format_minutes(senior_limit_minutes()))
    if (
        adjustment.direction == CustomerAdjustment.Direction.CREDIT
        and adjustment.customer.blocked_at is not None
    ):
        return ERR_SENIOR_BLOCKED
    return ""


def needs_senior(adjustment: CustomerAdjustment) -> bool:
    return bool(senior_reason(adjustment))


def request_refusal(*, user) -> Refusal | None:
    """Why `user` may not request an adjustment (None: the system, e.g. the demo, may)."""
    if user is not None and not user.has_perm(PERM_REQUEST):
        return Refusal(ERR_NO_REQUEST_PERMISSION, permission=True)
    return None


def decision_refusal(*, user, adjustment: CustomerAdjustment, decision: str) -> Refusal | None:
    """Why `user` may not approve or reject (`decision`) `adjustment`, or None when they may."""
    if user is None or not user.has_perm(PERM_APPROVE):
        return Refusal(ERR_NO_APPROVE_PERMISSION, permission=True)
    if adjustment.status != CustomerAdjustment.Status.PENDING:
        return Refusal(ERR_NOT_PENDING.format(status=adjustment.get_status_display().lower()))
    if decision != APPROVE:
        return None
    if adjustment.requested_by_id is not None and adjustment.requested_by_id == user.pk:
        return Refusal(ERR_OWN_REQUEST)
    reason = senior_reason(adjustment)
    if reason and not user.has_perm(PERM_APPROVE_LARGE):
        return Refusal(reason, permission=True)
    return None
