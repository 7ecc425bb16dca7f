"""Manual credits and debits to an instructor's earnings, four-eyes.

One person requests an adjustment (an amount, signed, in one currency, and a reason); another
approves it, and only then does it count: approval writes its one EarningEntry,
`adjustment:<pk>` (kind adjustment, available at once), in the transaction that marks it
applied, under the adjustment's row lock, so two approvals at once write one entry. Who may
decide is payments/earning_adjustment_rules.py, asked here again under the lock. Every
service writes an AdminAction in the same transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from payments.earning_adjustment_rules import (
    APPROVE,
    REJECT,
    Refusal,
    decision_refusal,
    request_refusal,
)
from payments.models import EarningAdjustment, EarningEntry, Instructor
from payments.money import format_money, is_known_currency

# --- Messages (staff see them as they are; tests assert the exact words) ----------------------
ERR_AMOUNT_ZERO = "Enter an amount other than zero: positive credits, negative debits."
ERR_AMOUNT_NOT_INTEGER = "The amount must be a whole number of minor units."
ERR_UNKNOWN_CURRENCY = "Unknown currency {currency!r}."
ERR_REASON_REQUIRED = "Give a reason for the adjustment."
ERR_REJECTION_NOTE_REQUIRED = "Give a reason for the rejection."

# Audit action names (AdminAction.action).
AUDIT_REQUEST = "earning_adjustment.request"
AUDIT_APPROVE = "earning_adjustment.approve"
AUDIT_REJECT = "earning_adjustment.reject"

DESCRIBE_ENTRY = "Adjustment #{pk}: {reason}"


class EarningAdjustmentError(Exception):
    """A rule said no. The message is safe to show to staff; nothing was changed."""


class EarningAdjustmentPermissionError(EarningAdjustmentError):
    """The acting user lacks a permission (the admin answers 403)."""


def _raise(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    if refusal.permission:
        raise EarningAdjustmentPermissionError(refusal.message)
    raise EarningAdjustmentError(refusal.message)


def adjustment_reference(adjustment_pk: int) -> str:
    return f"adjustment:{adjustment_pk}"


def _audit(*, action, adjustment, acting_user, client, reason="", details=None):
    return audit_record(
        acting_user=acting_user,
        action=action,
        target=adjustment,
        amount=adjustment.amount,
        currency=adjustment.currency,
        reason=reason,
        details={"instructor_id": adjustment.instructor_id, **(details or {})},
        client=client,
    )


def earning_adjustment_request(
    *,
    instructor: Instructor,
    amount: int,
    currency: str,
    reason: str,
    acting_user,
    client: ClientInfo | None = None,
) -> EarningAdjustment:
    """Ask for a credit (amount > 0) or debit (< 0) of `amount` minor units of `currency` to
    `instructor`'s earnings. Pending until someone else approves it: nothing moves yet.
    Raises EarningAdjustmentPermissionError / EarningAdjustmentError."""
    _raise(request_refusal(user=acting_user))
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise EarningAdjustmentError(ERR_AMOUNT_NOT_INTEGER)
    if amount == 0:
        raise EarningAdjustmentError(ERR_AMOUNT_ZERO)
    currency = (currency or "").strip().lower()
    if not is_known_currency(currency):
        raise EarningAdjustmentError(ERR_UNKNOWN_CURRENCY.format(currency=currency))
    reason = (reason or "").strip()
    if not reason:
        raise EarningAdjustmentError(ERR_REASON_REQUIRED)
    with transaction.atomic():
        adjustment = EarningAdjustment.objects.create(
            instructor=instructor,
            amount=amount,
            currency=currency,
            reason=reason,
            requested_by=acting_user if getattr(acting_user, "pk", None) else None,
        )
        _audit(
            action=AUDIT_REQUEST,
            adjustment=adjustment,
            acting_user=acting_user,
            client=client,
            reason=reason,
        )
    return adjustment


def earning_adjustment_approve(
    *,
    adjustment: EarningAdjustment,
    acting_user,
    note: str = "",
    client: ClientInfo | None = None,
) -> EarningAdjustment:
    """Approve a pending adjustment and apply it: its `adjustment:<pk>` entry, available at
    once, exactly once (row lock; the reference is unique besides). Not by its requester;
    above EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE only with the senior permission.
    Raises EarningAdjustmentPermissionError / EarningAdjustmentError."""
    with transaction.atomic():
        locked = EarningAdjustment.objects.select_for_update().get(pk=adjustment.pk)
        _raise(decision_refusal(user=acting_user, adjustment=locked, decision=APPROVE))
        now = timezone.now()
        locked.status = EarningAdjustment.Status.APPLIED
        locked.decided_by = acting_user
        locked.decided_at = now
        locked.decision_note = (note or "").strip()
        locked.save(
            update_fields=["status", "decided_by", "decided_at", "decision_note", "updated_at"]
        )
        entry, _ = EarningEntry.objects.get_or_create(
            reference=adjustment_reference(locked.pk),
            defaults={
                "instructor_id": locked.instructor_id,
                "currency": locked.currency,
                "amount": locked.amount,
                "kind": EarningEntry.Kind.ADJUSTMENT,
                "adjustment": locked,
                "occurred_at": now,
                "available_at": now,
                "description": DESCRIBE_ENTRY.format(pk=locked.pk, reason=locked.reason)[:255],
            },
        )
        _audit(
            action=AUDIT_APPROVE,
            adjustment=locked,
            acting_user=acting_user,
            client=client,
            reason=locked.decision_note,
            details={
                "entry": entry.reference,
                "amount_shown": format_money(locked.amount, locked.currency),
            },
        )
    return locked


def earning_adjustment_reject(
    *,
    adjustment: EarningAdjustment,
    acting_user,
    note: str,
    client: ClientInfo | None = None,
) -> EarningAdjustment:
    """Reject a pending adjustment (with a reason); it never counts. The requester may reject
    their own (a withdrawal). Raises EarningAdjustmentPermissionError / EarningAdjustmentError."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = EarningAdjustment.objects.select_for_update().get(pk=adjustment.pk)
        _raise(decision_refusal(user=acting_user, adjustment=locked, decision=REJECT))
        if not note:
            raise EarningAdjustmentError(ERR_REJECTION_NOTE_REQUIRED)
        locked.status = EarningAdjustment.Status.REJECTED
        locked.decided_by = acting_user
        locked.decided_at = timezone.now()
        locked.decision_note = note
        locked.save(
            update_fields=["status", "decided_by", "decided_at", "decision_note", "updated_at"]
        )
        _audit(
            action=AUDIT_REJECT,
            adjustment=locked,
            acting_user=acting_user,
            client=client,
            reason=note,
        )
    return locked
