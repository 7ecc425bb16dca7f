"""Writes for manual customer adjustments: a credit or a debit, of money or of prepaid hours,
requested by one person and applied only when a second one approves (four-eyes). Who may do
what (and the messages for "may not") is payments/customer_adjustment_rules.py, which the
pages and the API ask too; this module asks again under the adjustment's row lock.

- A request is PENDING: nothing moves. Rejecting it (with a note) ends it.
- Approving HOURS applies them in the approval's transaction, under the row lock: an entry in
  the hours ledger (payments.hours.credit_minutes / debit_minutes) whose unique reference is
  `customer_adjustment:<pk>`, so two approvals at once, or a replay, apply it once.
- Approving MONEY commits APPROVED with the idempotency key `customer_adjustment:<pk>`, then
  (after commit, in a task) applies it through Stripe exactly once, the refunds/payouts
  pattern: the adjustment is claimed under its row lock with a lease (APPLYING), the call is
  made outside any transaction with that key, a resumed attempt first looks the transaction
  up among the customer's balance transactions (metadata `customer_adjustment_id`), and the
  result is recorded under the lock: APPLIED with Stripe's transaction id and the customer's
  new balance, or FAILED when Stripe said no. An unknown outcome (timeout, 5xx) leaves it
  APPLYING with the claim released, to be looked up next time
  (customer_adjustments_apply_approved, the safety net).
- Stripe's balance is what the customer owes, so a money CREDIT is sent as a NEGATIVE amount
  (CustomerAdjustment.stripe_amount).

Every staff action writes an AdminAction (backoffice.audit.audit_record) in the transaction of
the change; the Stripe result is audited too (by the system). Lock order: CustomerAdjustment,
then the student's hours balance (taken by payments.hours).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.models import AdminAction
from payments import gateway, hours, sync
from payments.customer_adjustment_rules import (
    APPROVE,
    REJECT,
    Refusal,
    decision_refusal,
    format_minutes,
    request_refusal,
)
from payments.exceptions import GatewayError, IdempotencyConflict, InvalidRequest
from payments.models import BalanceEntry, Customer, CustomerAdjustment
from payments.money import format_money, is_known_currency

logger = logging.getLogger(__name__)

# --- Messages (staff see them as they are; tests assert the exact words). The permission and
# status messages live in payments/customer_adjustment_rules.py. --------------------------------
ERR_UNKNOWN_UNIT = "Choose money or hours."
ERR_UNKNOWN_DIRECTION = "Choose credit or debit."
ERR_AMOUNT_NOT_POSITIVE = "Enter an amount above zero; choose credit or debit for the sign."
ERR_UNKNOWN_CURRENCY = "Unknown currency {currency!r}."
ERR_CURRENCY_NOT_CUSTOMERS = (
    "This customer's Stripe balance is in {balance_currency}; Stripe takes adjustments in that "
    "currency only."
)
ERR_MINUTES_RANGE = "Enter a whole number of minutes from 1 to {maximum}."
ERR_REASON_REQUIRED = "Give a reason for the adjustment."
ERR_REJECTION_NOTE_REQUIRED = "Give a reason for the rejection."
ERR_HOURS_NOT_APPLIED = "The hours could not be applied: {error}"
ERR_DUPLICATE_PENDING = (
    "You asked for the same adjustment less than {minutes} minutes ago (#{pk}, pending): "
    "not asked twice. Change the amount, or withdraw #{pk} first, to ask again."
)
# A double submit (two clicks, a retried form) within this many minutes is refused: same
# customer, requester, unit, direction, amount/currency or minutes, still pending.
DUPLICATE_WINDOW_MINUTES = 5

# Audit action names (AdminAction.action).
AUDIT_REQUEST = "customer_adjustment.request"
AUDIT_APPROVE = "customer_adjustment.approve"
AUDIT_REJECT = "customer_adjustment.reject"
AUDIT_APPLY = "customer_adjustment.apply"

REFERENCE_PREFIX = "customer_adjustment:"
# The metadata key every Stripe balance transaction of ours carries (found by it after a
# timeout).
METADATA_ID = "customer_adjustment_id"
# About 1,666 hours: more is a typo.
MAX_MINUTES = 100_000
DESCRIPTION = "Adjustment #{pk}: {reason}"


class CustomerAdjustmentError(Exception):
    """A rule said no. The message is safe to show to staff; nothing was changed."""


class CustomerAdjustmentPermissionError(CustomerAdjustmentError):
    """The acting user lacks a permission (the admin answers 403)."""


def _raise(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    if refusal.permission:
        raise CustomerAdjustmentPermissionError(refusal.message)
    raise CustomerAdjustmentError(refusal.message)


def _user_or_none(acting_user):
    return acting_user if getattr(acting_user, "pk", None) else None


def adjustment_reference(adjustment_pk: int) -> str:
    """The idempotency key (money) and the hours ledger reference (hours) of an adjustment."""
    return f"{REFERENCE_PREFIX}{adjustment_pk}"


def describe(adjustment: CustomerAdjustment) -> str:
    """'Credit $12.50' / 'Debit 1 h 30 min': what the adjustment does, in words."""
    if adjustment.unit == CustomerAdjustment.Unit.MONEY:
        what = format_money(adjustment.amount, adjustment.currency)
    else:
        what = format_minutes(adjustment.minutes)
    return f"{adjustment.get_direction_display()} {what}"


def _audit(
    *,
    action: str,
    adjustment: CustomerAdjustment,
    acting_user,
    client: ClientInfo | None = None,
    reason: str = "",
    result: str = AdminAction.Result.SUCCESS,
    details: dict | None = None,
) -> AdminAction:
    money = adjustment.unit == CustomerAdjustment.Unit.MONEY
    return audit_record(
        acting_user=acting_user,
        action=action,
        target=adjustment,
        # In the customer's favour: a credit positive, a debit negative.
        amount=adjustment.signed_amount if money else None,
        currency=adjustment.currency,
        reason=reason,
        result=result,
        details={
            "customer_id": adjustment.customer_id,
            "unit": adjustment.unit,
            "direction": adjustment.direction,
            **({} if money else {"minutes": adjustment.signed_minutes}),
            **(details or {}),
        },
        client=client,
    )


# --- request / approve / reject ---------------------------------------------------------------


def customer_adjustment_request(
    *,
    customer: Customer,
    direction: str,
    unit: str,
    reason: str,
    acting_user,
    amount: int = 0,
    currency: str = "",
    minutes: int = 0,
    client: ClientInfo | None = None,
) -> CustomerAdjustment:
    """Ask for a credit or a debit (`direction`) to `customer`: money (`amount` minor units of
    `currency`, positive) or hours (`minutes`, positive). Pending until someone else approves
    it: nothing moves yet. Raises CustomerAdjustmentPermissionError / CustomerAdjustmentError."""
    _raise(request_refusal(user=acting_user))
    if direction not in CustomerAdjustment.Direction.values:
        raise CustomerAdjustmentError(ERR_UNKNOWN_DIRECTION)
    reason = (reason or "").strip()
    values: dict = {}
    if unit == CustomerAdjustment.Unit.MONEY:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise CustomerAdjustmentError(ERR_AMOUNT_NOT_POSITIVE)
        currency = (currency or "").strip().lower()
        if not is_known_currency(currency):
            raise CustomerAdjustmentError(ERR_UNKNOWN_CURRENCY.format(currency=currency))
        values = {"amount": amount, "currency": currency}
    elif unit == CustomerAdjustment.Unit.HOURS:
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not 0 < minutes <= MAX_MINUTES
        ):
            raise CustomerAdjustmentError(ERR_MINUTES_RANGE.format(maximum=MAX_MINUTES))
        values = {"minutes": minutes}
    else:
        raise CustomerAdjustmentError(ERR_UNKNOWN_UNIT)
    if not reason:
        raise CustomerAdjustmentError(ERR_REASON_REQUIRED)
    with transaction.atomic():
        # Locked so that two submits at once see each other (the duplicate check below).
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        same = (
            CustomerAdjustment.objects.filter(
                customer=customer,
                unit=unit,
                direction=direction,
                status=CustomerAdjustment.Status.PENDING,
                requested_by=_user_or_none(acting_user),
                created_at__gte=timezone.now() - timedelta(minutes=DUPLICATE_WINDOW_MINUTES),
                **values,
            )
            .order_by("pk")
            .first()
        )
        if same is not None:
            raise CustomerAdjustmentError(
                ERR_DUPLICATE_PENDING.format(minutes=DUPLICATE_WINDOW_MINUTES, pk=same.pk)
            )
        balance_currency = customer.stripe_balance_currency
        if unit == CustomerAdjustment.Unit.MONEY and balance_currency not in ("", currency):
            # Stripe refuses a balance transaction in another currency than the customer's.
            raise CustomerAdjustmentError(
                ERR_CURRENCY_NOT_CUSTOMERS.format(balance_currency=balance_currency.upper())
            )
        adjustment = CustomerAdjustment(
            customer=customer,
            direction=direction,
            unit=unit,
            reason=reason,
            requested_by=_user_or_none(acting_user),
            **values,
        )
        adjustment._history_user = _user_or_none(acting_user)
        adjustment.save()
        _audit(
            action=AUDIT_REQUEST,
            adjustment=adjustment,
            acting_user=acting_user,
            client=client,
            reason=reason,
        )
    return adjustment


def _locked(adjustment_id: int) -> CustomerAdjustment:
    # A real row lock on PostgreSQL (of the adjustment only; the customer is read for the
    # blocked rule); SQLite serialises writers (transaction_mode IMMEDIATE).
    return (
        CustomerAdjustment.objects.select_for_update(of=("self",))
        .select_related("customer")
        .get(pk=adjustment_id)
    )


def _apply_hours(adjustment: CustomerAdjustment) -> BalanceEntry:
    """The adjustment's entry in the hours ledger (under the caller's row lock), exactly
    once: payments.hours answers None when the reference was applied before, and then the
    entry it wrote is the one we link. Raises hours.HoursError (NotEnoughMinutes: a debit
    above what the unexpired packages hold)."""
    reference = adjustment_reference(adjustment.pk)
    note = DESCRIPTION.format(pk=adjustment.pk, reason=adjustment.reason)[:255]
    if adjustment.direction == CustomerAdjustment.Direction.CREDIT:
        entry = hours.credit_minutes(
            customer_id=adjustment.customer_id,
            minutes=adjustment.minutes,
            kind=BalanceEntry.Kind.ADJUSTMENT,
            reference=reference,
            note=note,
        )
    else:
        entry = hours.debit_minutes(
            customer_id=adjustment.customer_id,
            minutes=adjustment.minutes,
            kind=BalanceEntry.Kind.ADJUSTMENT,
            reference=reference,
            note=note,
        )
    if entry is None:
        entry = BalanceEntry.objects.filter(reference=reference).order_by("pk").first()
    return entry


def customer_adjustment_approve(
    *,
    adjustment: CustomerAdjustment,
    acting_user,
    note: str = "",
    client: ClientInfo | None = None,
) -> CustomerAdjustment:
    """Approve a pending adjustment. Hours are applied at once (APPLIED, in this
    transaction); money is APPROVED with its idempotency key committed and applied through
    Stripe by a task queued after commit. Not by the requester; above the senior limits (or
    a credit to a blocked customer) only with the senior permission. Raises
    CustomerAdjustmentPermissionError / CustomerAdjustmentError."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = _locked(adjustment.pk)
        _raise(decision_refusal(user=acting_user, adjustment=locked, decision=APPROVE))
        now = timezone.now()
        locked.decided_by = _user_or_none(acting_user)
        locked.decided_at = now
        locked.decision_note = note
        # Derived from our row and committed before anything is applied (DESIGN decision 3).
        locked.idempotency_key = adjustment_reference(locked.pk)
        details: dict = {"idempotency_key": locked.idempotency_key}
        if locked.unit == CustomerAdjustment.Unit.HOURS:
            try:
                entry = _apply_hours(locked)
            except hours.HoursError as exc:
                # The hours ledger refused (a debit above what is left): nothing moved.
                raise CustomerAdjustmentError(ERR_HOURS_NOT_APPLIED.format(error=exc)) from exc
            locked.status = CustomerAdjustment.Status.APPLIED
            locked.applied_at = now
            locked.balance_entry = entry
            details["entry"] = entry.reference if entry else ""
        else:
            locked.status = CustomerAdjustment.Status.APPROVED
        locked._history_user = _user_or_none(acting_user)
        locked.save()
        _audit(
            action=AUDIT_APPROVE,
            adjustment=locked,
            acting_user=acting_user,
            client=client,
            reason=note,
            details=details,
        )
        if locked.unit == CustomerAdjustment.Unit.MONEY:
            pk = locked.pk
            transaction.on_commit(lambda: _enqueue_apply(pk), robust=True)
    return locked


def _enqueue_apply(adjustment_id: int) -> None:
    from django_q.tasks import async_task

    async_task(
        "payments.tasks.customer_adjustment_apply_task",
        adjustment_id,
        task_name=f"customer-adjustment-{adjustment_id}",
    )


def customer_adjustment_reject(
    *,
    adjustment: CustomerAdjustment,
    acting_user,
    note: str,
    client: ClientInfo | None = None,
) -> CustomerAdjustment:
    """Reject a pending adjustment (a note is required); it never applies. The requester may
    reject their own (a withdrawal). Raises CustomerAdjustmentPermissionError /
    CustomerAdjustmentError."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = _locked(adjustment.pk)
        _raise(decision_refusal(user=acting_user, adjustment=locked, decision=REJECT))
        if not note:
            raise CustomerAdjustmentError(ERR_REJECTION_NOTE_REQUIRED)
        locked.status = CustomerAdjustment.Status.REJECTED
        locked.decided_by = _user_or_none(acting_user)
        locked.decided_at = timezone.now()
        locked.decision_note = note
        locked._history_user = _user_or_none(acting_user)
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


# --- applying money through Stripe ------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.CUSTOMER_ADJUSTMENT_APPLY_LEASE_SECONDS)


def _claim(adjustment_id: int) -> CustomerAdjustment | None:
    """Under the row lock: APPROVED -> APPLYING, or take over an APPLYING adjustment whose
    claim was released (an unknown outcome) or whose worker died (lease expired); committed
    before any Stripe call. None when there is nothing to do or another worker holds a live
    claim."""
    with transaction.atomic():
        locked = _locked(adjustment_id)
        now = timezone.now()
        if locked.unit != CustomerAdjustment.Unit.MONEY:
            return None
        if locked.status == CustomerAdjustment.Status.APPLYING:
            started = locked.applying_started_at
            if started is not None and started > now - _lease():
                return None  # another worker is on it
        elif locked.status != CustomerAdjustment.Status.APPROVED:
            return None
        locked.status = CustomerAdjustment.Status.APPLYING
        locked.applying_started_at = now
        locked.attempts += 1
        locked.idempotency_key = locked.idempotency_key or adjustment_reference(locked.pk)
        locked.save(
            update_fields=[
                "status",
                "applying_started_at",
                "attempts",
                "idempotency_key",
                "updated_at",
            ]
        )
    return locked


def _find_existing_transaction(adjustment: CustomerAdjustment):
    """The balance transaction Stripe already made for this adjustment in an earlier
    attempt, if any: found by the metadata every one of ours carries."""
    for txn in gateway.stripe_customer_balance_transaction_list(
        customer_id=adjustment.customer.stripe_id
    ):
        if str((txn.metadata or {}).get(METADATA_ID, "")) == str(adjustment.pk):
            return txn
    return None


def customer_adjustment_apply(*, adjustment_id: int) -> CustomerAdjustment:
    """Apply an approved money adjustment to the customer's Stripe balance, exactly once.
    Safe to call any number of times, concurrently, and after a crash: only the worker that
    claims it calls Stripe, always with the key `customer_adjustment:<pk>`, and a resumed
    attempt first looks the transaction up. Returns the adjustment as it stands afterwards
    (hours, pending, applied, ... adjustments are returned unchanged)."""
    claimed = _claim(adjustment_id)
    if claimed is None:
        return CustomerAdjustment.objects.get(pk=adjustment_id)
    try:
        txn = None
        if claimed.attempts > 1:
            # An earlier attempt may have reached Stripe before dying: never apply twice.
            txn = _find_existing_transaction(claimed)
        if txn is None:
            txn = gateway.stripe_customer_balance_transaction_create(
                customer_id=claimed.customer.stripe_id,
                amount=claimed.stripe_amount,
                currency=claimed.currency,
                description=DESCRIPTION.format(pk=claimed.pk, reason=claimed.reason),
                metadata={METADATA_ID: str(claimed.pk)},
                idempotency_key=claimed.idempotency_key,
            )
    except IdempotencyConflict as exc:
        # Our key was used with other parameters: a transaction may exist. Never guess;
        # resume by looking it up.
        _release_claim(claimed.pk, message=str(exc))
        logger.error("customer adjustment %s: idempotency conflict: %s", claimed.pk, exc)
        return CustomerAdjustment.objects.get(pk=claimed.pk)
    except InvalidRequest as exc:
        # Stripe answered and said no: nothing changed in Stripe.
        return _record_failure(claimed.pk, code=exc.stripe_code or "", message=str(exc))
    except GatewayError as exc:
        # Outcome unknown (timeout, connection, rate limit, 5xx): Stripe may have acted.
        _release_claim(claimed.pk, message=str(exc))
        logger.warning("customer adjustment %s: gateway error, will resume: %s", claimed.pk, exc)
        return CustomerAdjustment.objects.get(pk=claimed.pk)
    return _record_success(claimed.pk, txn=txn)


def _release_claim(adjustment_id: int, *, message: str) -> None:
    CustomerAdjustment.objects.filter(
        pk=adjustment_id, status=CustomerAdjustment.Status.APPLYING
    ).update(applying_started_at=None, failure_message=message[:2000], updated_at=timezone.now())


def _record_failure(adjustment_id: int, *, code: str, message: str) -> CustomerAdjustment:
    with transaction.atomic():
        locked = _locked(adjustment_id)
        if locked.status != CustomerAdjustment.Status.APPLYING:
            return locked
        locked.status = CustomerAdjustment.Status.FAILED
        locked.failure_code = (code or "")[:64]
        locked.failure_message = message
        locked.applying_started_at = None
        locked.save(
            update_fields=[
                "status",
                "failure_code",
                "failure_message",
                "applying_started_at",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_APPLY,
            adjustment=locked,
            acting_user=None,
            reason=message,
            result=AdminAction.Result.FAILURE,
            details={"failure_code": locked.failure_code},
        )
    logger.warning("customer adjustment %s failed: %s", adjustment_id, message)
    return locked


def _record_success(adjustment_id: int, *, txn) -> CustomerAdjustment:
    """One transaction: the adjustment applied with Stripe's transaction id and the
    customer's balance after it, and the audit row. Then the customer's mirror is refreshed
    from Stripe (the same upsert the sync and customer.updated use; best effort: they land
    it anyway)."""
    with transaction.atomic():
        locked = _locked(adjustment_id)
        if locked.status == CustomerAdjustment.Status.APPLIED:
            return locked  # a concurrent resumer recorded it already
        if locked.status != CustomerAdjustment.Status.APPLYING:
            logger.error(
                "customer adjustment %s: Stripe transaction %s arrived while it is %s",
                locked.pk,
                txn.id,
                locked.status,
            )
            return locked
        locked.status = CustomerAdjustment.Status.APPLIED
        locked.stripe_balance_transaction_id = txn.id
        locked.stripe_ending_balance = txn.ending_balance
        locked.applied_at = timezone.now()
        locked.applying_started_at = None
        locked.failure_code = ""
        locked.failure_message = ""
        locked.save(
            update_fields=[
                "status",
                "stripe_balance_transaction_id",
                "stripe_ending_balance",
                "applied_at",
                "applying_started_at",
                "failure_code",
                "failure_message",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_APPLY,
            adjustment=locked,
            acting_user=None,
            details={
                "stripe_balance_transaction_id": txn.id,
                "stripe_amount": txn.amount,
                "stripe_ending_balance": txn.ending_balance,
                "attempts": locked.attempts,
            },
        )
    try:
        sync.upsert_customers(
            [gateway.stripe_customer_retrieve(customer_id=locked.customer.stripe_id)]
        )
    except GatewayError as exc:
        logger.info("customer %s: balance not refreshed now: %s", locked.customer_id, exc)
    return locked


def customer_adjustments_apply_approved(*, limit: int = 500) -> dict:
    """Apply approved money adjustments and resume APPLYING ones whose claim was released
    (unknown outcome) or whose worker died: the safety net behind each approval's own task.
    Counts per outcome, plus `unknown_outcome`: adjustments left APPLYING with a released
    claim after this pass, and the last `gateway_error` among them."""
    now = timezone.now()
    Status = CustomerAdjustment.Status
    ids = list(
        CustomerAdjustment.objects.filter(unit=CustomerAdjustment.Unit.MONEY)
        .filter(
            Q(status=Status.APPROVED)
            | Q(status=Status.APPLYING, applying_started_at__isnull=True)
            | Q(status=Status.APPLYING, applying_started_at__lte=now - _lease())
        )
        .order_by("decided_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {"candidates": len(ids), "applied": 0, "failed": 0, "still_applying": 0}
    outcomes = {Status.APPLIED: "applied", Status.FAILED: "failed"}
    for pk in ids:
        result = customer_adjustment_apply(adjustment_id=pk)
        counts[outcomes.get(result.status, "still_applying")] += 1
    waiting = CustomerAdjustment.objects.filter(
        status=Status.APPLYING, applying_started_at__isnull=True
    )
    last = waiting.order_by("-updated_at", "-id").values_list("failure_message", flat=True).first()
    counts["unknown_outcome"] = waiting.count()
    counts["gateway_error"] = last or ""
    return counts
