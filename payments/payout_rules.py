"""Who may do what to a payout, and if not, why: one answer for the pages and the services.

A page asks before it shows a button (the payouts list, the instructor page); the services in
payments/services/payouts.py ask again under the payout's row lock and raise with the same
message, so what a page says before the click and what the server says after it cannot differ.

The functions read only what they are given (the user's permissions, the payout's fields); the
figures that need a query (the available balance, what is left to reverse) are the caller's.

The rules:
- approving (and canceling) needs payments.approve_payout; only a pending payout is approved,
  only a pending or approved one is canceled (after that money may be moving);
- four-eyes: a manual payout is never approved by the person who asked for it (a run's payouts
  are computed from the ledger, not asked for by anyone);
- a payout above PAYOUT_SENIOR_APPROVAL_ABOVE in its currency also needs
  payments.approve_large_payout (a currency with no configured limit: every payout in it);
- a bank transfer is marked paid (with the bank's reference) by someone holding
  payments.mark_payout_paid, once it is approved;
- a paid Connect payout's transfer is reversed by someone holding payments.reverse_payout, for
  at most what is not reversed yet.
"""

from __future__ import annotations

from django.conf import settings

from backoffice.refusals import Refusal

from .models import Payout
from .money import format_money, threshold_minor

PERM_CREATE = "payments.add_payout"
PERM_APPROVE = "payments.approve_payout"
PERM_APPROVE_LARGE = "payments.approve_large_payout"
PERM_MARK_PAID = "payments.mark_payout_paid"
PERM_REVERSE = "payments.reverse_payout"

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_NO_CREATE_PERMISSION = "You do not have permission to create payouts."
ERR_NO_APPROVE_PERMISSION = "You do not have permission to approve or cancel payouts."
ERR_NO_MARK_PAID_PERMISSION = "You do not have permission to mark payouts paid."
ERR_NO_REVERSE_PERMISSION = "You do not have permission to reverse payouts."
ERR_NOT_PENDING = "Only pending payouts can be approved; this one is {status}."
ERR_NOT_CANCELABLE = (
    "Only pending or approved payouts can be canceled; this one is {status} (money may be "
    "moving or has moved)."
)
ERR_NO_BANK_ACCOUNT = (
    "This bank-transfer payout has no bank account to pay: cancel it, enter the instructor's "
    "bank account, and create the payout again."
)
ERR_OWN_PAYOUT = "You asked for this payout, so someone else must approve it (four-eyes rule)."
ERR_SENIOR_NEEDED = (
    "Payouts above {limit} need a senior approver (payments.approve_large_payout); this one is "
    "{amount}."
)
ERR_SENIOR_NEEDED_ANY = (
    "No senior limit is configured for {currency}, so every payout in it needs a senior "
    "approver (payments.approve_large_payout)."
)
ERR_NOT_BANK_TRANSFER = "Only bank-transfer payouts are marked paid by hand; this one is {method}."
ERR_NOT_APPROVED_FOR_PAYMENT = "Approve the payout before marking it paid; it is {status}."
ERR_NOT_REVERSIBLE = "Only a paid Stripe Connect payout with a transfer can be reversed."
ERR_NOTHING_TO_REVERSE = "This payout's transfer is reversed in full already."


def _status_words(payout: Payout) -> str:
    return payout.get_status_display().lower()


def senior_limit(currency: str) -> int | None:
    """The senior approval limit of `currency` in minor units, or None when none is configured
    (then every payout in that currency needs a senior: never another currency's number)."""
    if currency not in settings.PAYOUT_SENIOR_APPROVAL_ABOVE:
        return None
    return threshold_minor(settings.PAYOUT_SENIOR_APPROVAL_ABOVE, currency)


def needs_senior_approval(*, amount: int, currency: str) -> bool:
    """Whether a payout of `amount` minor units of `currency` needs approve_large_payout."""
    limit = senior_limit(currency)
    return limit is None or amount > limit


def senior_message(*, amount: int, currency: str) -> str:
    limit = senior_limit(currency)
    if limit is None:
        return ERR_SENIOR_NEEDED_ANY.format(currency=currency.upper())
    return ERR_SENIOR_NEEDED.format(
        limit=format_money(limit, currency), amount=format_money(amount, currency)
    )


def create_refusal(*, user) -> Refusal | None:
    """Why `user` may not create a manual payout, or None (the amount is the service's)."""
    if user is None or not user.has_perm(PERM_CREATE):
        return Refusal(ERR_NO_CREATE_PERMISSION, permission=True)
    return None


def approve_refusal(*, user, payout: Payout) -> Refusal | None:
    """Why `user` may not approve `payout`, or None when they may."""
    if user is None or not user.has_perm(PERM_APPROVE):
        return Refusal(ERR_NO_APPROVE_PERMISSION, permission=True)
    if payout.status != Payout.Status.PENDING:
        return Refusal(ERR_NOT_PENDING.format(status=_status_words(payout)))
    if (
        payout.source == Payout.Source.MANUAL
        and payout.requested_by_id is not None
        and payout.requested_by_id == user.pk
    ):
        return Refusal(ERR_OWN_PAYOUT)
    if payout.method == Payout.Method.BANK and not payout.bank_account:
        return Refusal(ERR_NO_BANK_ACCOUNT)
    if needs_senior_approval(amount=payout.amount, currency=payout.currency) and not user.has_perm(
        PERM_APPROVE_LARGE
    ):
        return Refusal(senior_message(amount=payout.amount, currency=payout.currency), True)
    return None


def cancel_refusal(*, user, payout: Payout) -> Refusal | None:
    """Why `user` may not cancel `payout`, or None. Canceling gives the money back to the
    balance; it needs the approver's permission but no four-eyes (it moves no money out)."""
    if user is None or not user.has_perm(PERM_APPROVE):
        return Refusal(ERR_NO_APPROVE_PERMISSION, permission=True)
    if payout.status not in (Payout.Status.PENDING, Payout.Status.APPROVED):
        return Refusal(ERR_NOT_CANCELABLE.format(status=_status_words(payout)))
    return None


def mark_paid_refusal(*, user, payout: Payout) -> Refusal | None:
    """Why `user` may not mark `payout` paid by bank transfer, or None."""
    if user is None or not user.has_perm(PERM_MARK_PAID):
        return Refusal(ERR_NO_MARK_PAID_PERMISSION, permission=True)
    if payout.method != Payout.Method.BANK:
        return Refusal(ERR_NOT_BANK_TRANSFER.format(method=payout.get_method_display()))
    if payout.status != Payout.Status.APPROVED:
        return Refusal(ERR_NOT_APPROVED_FOR_PAYMENT.format(status=_status_words(payout)))
    return None


def reverse_refusal(*, user, payout: Payout) -> Refusal | None:
    """Why `user` may not reverse (part of) `payout`'s transfer, or None. The amount is
    checked by the service against what is left, under the lock."""
    if user is None or not user.has_perm(PERM_REVERSE):
        return Refusal(ERR_NO_REVERSE_PERMISSION, permission=True)
    if (
        payout.status != Payout.Status.PAID
        or payout.method != Payout.Method.CONNECT
        or not payout.stripe_transfer_id
    ):
        return Refusal(ERR_NOT_REVERSIBLE)
    if payout.amount_reversed >= payout.amount:
        return Refusal(ERR_NOTHING_TO_REVERSE)
    return None
