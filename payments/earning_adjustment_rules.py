"""Who may request, approve or reject a manual earnings adjustment, and if not, why: one answer
for the pages and the services. A page asks before it offers a button; the service
(payments/services/earning_adjustments.py) asks again under the row lock and raises with the
same message, so what the page says and what the server does cannot differ.

Reads only what it is given (the user's permissions, the adjustment's fields).
"""

from __future__ import annotations

from django.conf import settings

from backoffice.refusals import Refusal
from payments.models import EarningAdjustment
from payments.money import format_money, threshold_minor

PERM_REQUEST = "payments.add_earningadjustment"
PERM_APPROVE = "payments.approve_earningadjustment"
# The senior permission of payouts: an adjustment is money paid out at the next run.
PERM_APPROVE_LARGE = "payments.approve_large_payout"

APPROVE = "approve"
REJECT = "reject"

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_NO_REQUEST_PERMISSION = "You do not have permission to adjust instructors' earnings."
ERR_NO_APPROVE_PERMISSION = "You do not have permission to approve or reject earnings adjustments."
ERR_NOT_PENDING = "Only pending adjustments can be approved or rejected; this one is {status}."
ERR_OWN_REQUEST = "You requested this adjustment, so someone else must approve it (four-eyes rule)."
ERR_SENIOR = (
    "Adjustments above {limit} need a senior approver (permission to approve large payouts)."
)


def senior_limit(currency: str) -> int:
    """Minor units above which (in absolute value) approving needs PERM_APPROVE_LARGE."""
    return threshold_minor(settings.EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE, currency)


def needs_senior(*, amount: int, currency: str) -> bool:
    """A credit or a debit larger than the currency's senior limit."""
    return abs(amount) > senior_limit(currency)


def request_refusal(*, user) -> Refusal | None:
    """Why `user` may not request an adjustment (None: the system, e.g. the demo, may)."""
    if user is not None and not user.has_perm(PERM_REQUEST):
        return Refusal(ERR_NO_REQUEST_PERMISSION, permission=True)
    return None


def decision_refusal(*, user, adjustment: EarningAdjustment, decision: str) -> Refusal | None:
    """Why `user` may not approve or reject (`decision`) `adjustment`, or None when they may.
    Approving also needs someone other than the requester (four-eyes) and, above the
    currency's senior limit, the senior permission. Rejecting one's own request is allowed:
    it is how a requester withdraws a mistake."""
    if user is None or not user.has_perm(PERM_APPROVE):
        return Refusal(ERR_NO_APPROVE_PERMISSION, permission=True)
    if adjustment.status != EarningAdjustment.Status.PENDING:
        return Refusal(ERR_NOT_PENDING.format(status=adjustment.get_status_display().lower()))
    if decision != APPROVE:
        return None
    if adjustment.requested_by_id is not None and adjustment.requested_by_id == user.pk:
        return Refusal(ERR_OWN_REQUEST)
    if needs_senior(amount=adjustment.amount, currency=adjustment.currency) and not user.has_perm(
        PERM_APPROVE_LARGE
    ):
        limit = format_money(senior_limit(adjustment.currency), adjustment.currency)
        return Refusal(ERR_SENIOR.format(limit=limit), permission=True)
    return None
