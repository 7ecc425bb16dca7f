"""Writes for refunds. What may be refunded is decided in refunds/rules.py (pure functions and
the messages staff see) from figures refunds/selectors.py reads; this module applies those
rules whatever calls it (admin, command, task), under a row lock:

- a new request must fit in captured - processed - in flight - pending: pending requests are
  reserved when they are made, so two requests cannot ask for the same money;
- approval re-checks the payment and the amount (behind the pending requests made before it),
  four-eyes (the requester cannot approve their own request) and the senior limit of the
  request's currency;
- processing re-checks the payment and the amount again under the lock before any Stripe call:
  a payment disputed (or refunded in full, failed, canceled) since approval is not refunded,
  and the request ends CANCELED with the reason in failure_message. FAILED is kept for "Stripe
  was asked and said no", CANCELED for "we stopped before asking Stripe";
- money leaves through the gateway exactly once: a request is claimed under a row lock, its
  idempotency key is committed before the Stripe call, and a resumed attempt first looks for
  the refund Stripe may already have made (by metadata) before it checks or calls again.

Every service takes keyword-only arguments and `acting_user`, and writes an AdminAction row
in the same transaction as the change it describes. Lock order is always Payment, then
RefundRequest, so concurrent approvals and processing runs cannot deadlock.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.models import AdminAction, CustomerEmail
from backoffice.outbox import queue_customer_email
from payments import gateway
from payments.exceptions import CardDeclined, GatewayError, InvalidRequest
from payments.ledger import CLOSED_DISPUTE_STATUSES
from payments.models import Customer, Dispute, FraudAlert, Payment
from payments.money import format_money
from payments.signals import refund_processed
from payments.sync import upsert_refunds

from . import rules
from .models import RefundRequest

# Who may do what, and the messages for "may not": refunds/permissions.py, which the pages ask
# too. Re-exported here, where callers and tests have always found them.
from .permissions import (  # noqa: F401
    APPROVE,
    ERR_NO_APPROVE_PERMISSION,
    ERR_NO_REQUEST_PERMISSION,
    ERR_NOT_PENDING,
    ERR_OWN_REQUEST,
    PERM_APPROVE,
    PERM_APPROVE_LARGE,
    PERM_REQUEST,
    REJECT,
    Refusal,
    decision_refusal,
    request_refusal,
)
from .selectors import payment_refundability

logger = logging.getLogger(__name__)

# --- Messages (staff see them as they are; tests assert the exact words). The rules' own
# messages (amounts, blocked payments, senior limit) live in refunds/rules.py. -------------------
ERR_REJECTION_REASON_REQUIRED = "Give a reason for the rejection."


# Audit action names (AdminAction.action).
AUDIT_CREATE = "refund_request.create"
AUDIT_APPROVE = "refund_request.approve"
AUDIT_REJECT = "refund_request.reject"
AUDIT_PROCESS = "refund_request.process"
AUDIT_CANCEL = "refund_request.cancel"
AUDIT_FRAUD_PROPOSAL_SKIPPED = "refund_request.fraud_proposal_skipped"

FRAUD_PROPOSAL_NOTE = (
    "Proposed on confirming fraud alert #{alert} (Stripe early fraud warning {warning}): "
    "refund before the dispute arrives."
)
SKIP_FULLY_REFUNDED = "Not proposed: the payment is already refunded in full."
SKIP_OPEN_DISPUTE = "Not proposed: the payment has an open dispute; it is settled there."
SKIP_NOT_REFUNDABLE = "Not proposed: {reason}"


class RefundError(Exception):
    """A rule said no. The message is safe to show to staff; nothing was changed."""


class RefundPermissionError(RefundError):
    """The acting user lacks a permission (the admin turns this into 403)."""


def _audit(
    *,
    action: str,
    refund_request: RefundRequest,
    acting_user,
    client: ClientInfo | None,
    reason: str = "",
    result: str = AdminAction.Result.SUCCESS,
    details: dict | None = None,
) -> AdminAction:
    return audit_record(
        acting_user=acting_user,
        action=action,
        target=refund_request,
        amount=refund_request.amount,
        currency=refund_request.currency,
        reason=reason,
        result=result,
        details={"payment_id": refund_request.payment_id, **(details or {})},
        client=client,
    )


def _check_refundable(
    *, payment: Payment, refund_request: RefundRequest | None, amount, currency: str | None
) -> None:
    """Raise RefundError unless `amount` can be refunded on the (locked) `payment`: for a new
    request when `refund_request` is None, else for deciding or processing that request."""
    blocked = rules.payment_blocked_reason(payment)
    if blocked:
        raise RefundError(blocked)
    refundability = payment_refundability(payment=payment, refund_request=refund_request)
    error = rules.amount_error(
        amount=amount,
        currency=currency,
        payment_currency=payment.currency,
        refundable=refundability.refundable,
    )
    if error:
        raise RefundError(error)


# The audit row of a request with a customer note says where the note is, not what it says.
CUSTOMER_NOTE_KEPT = "kept on the request"


def _locked_payment(payment_id: int) -> Payment:
    # select_for_update is a real row lock on PostgreSQL; SQLite serialises writers anyway
    # (transaction_mode IMMEDIATE), so the same code is safe on both.
    return Payment.objects.select_for_update().get(pk=payment_id)


def refund_request_create(
    *,
    payment: Payment,
    amount: int,
    acting_user,
    currency: str | None = None,
    reason: str = RefundRequest.Reason.REQUESTED_BY_CUSTOMER,
    internal_reason: str = "",
    customer_note: str = "",
    admin_notes: str = "",
    source: str = RefundRequest.Source.STAFF,
    notify_customer: bool = True,
    fraud_alert: FraudAlert | None = None,
    client: ClientInfo | None = None,
) -> RefundRequest:
    """Ask to refund `amount` minor units of `payment` (partial allowed). Raises RefundError
    (bad amount or currency, payment not refundable) or RefundPermissionError."""
    if acting_user is not None and not acting_user.has_perm(PERM_REQUEST):
        # The same refusal the payment page shows (request_refusal), before any lock.
        _raise(request_refusal(user=acting_user, payment=payment))
    with transaction.atomic():
        payment = _locked_payment(payment.pk)
        _check_refundable(payment=payment, refund_request=None, amount=amount, currency=currency)
        refund_request = RefundRequest.objects.create(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            reason=reason,
            internal_reason=internal_reason,
            customer_note=customer_note,
            admin_notes=admin_notes,
            source=source,
            notify_customer=notify_customer,
            fraud_alert=fraud_alert,
            requested_by=acting_user if getattr(acting_user, "pk", None) else None,
        )
        _audit(
            action=AUDIT_CREATE,
            refund_request=refund_request,
            acting_user=acting_user,
            client=client,
            # Staff words only: the customer's note is personal data, kept on the request
            # (where erasure blanks it), never copied into the append-only audit trail.
            reason=admin_notes,
            details={"customer_note": CUSTOMER_NOTE_KEPT} if customer_note else None,
        )
    return refund_request


def _customer_blocked(payment: Payment) -> bool:
    """Whether the (locked) payment's customer is blocked right now."""
    if payment.customer_id is None:
        return False
    return Customer.objects.filter(pk=payment.customer_id, blocked_at__isnull=False).exists()


def refund_request_propose_for_fraud(*, alert: FraudAlert) -> RefundRequest | None:
    """Propose a full refund (what is still refundable) of a confirmed early-fraud-warning
    alert's payment, as a pending request with source "fraud" (it still needs approval; a
    blocked customer's needs a senior). Once per alert, however often it is called, also
    concurrently (the alert's row lock, and a unique constraint on fraud_alert). When the
    payment is refunded in full, has an open dispute or is otherwise not refundable, nothing
    is proposed and an audit row says why. Returns the request, or None when skipped or
    already proposed. A system action: no acting user."""
    with transaction.atomic():
        # Lock order: FraudAlert, then Payment (refund_request_create), then RefundRequest.
        locked = FraudAlert.objects.select_for_update().get(pk=alert.pk)
        if (
            locked.status != FraudAlert.Status.CONFIRMED
            or locked.source != FraudAlert.Source.EARLY_FRAUD_WARNING
            or RefundRequest.objects.filter(fraud_alert=locked).exists()
        ):
            return None
        payment = _locked_payment(locked.payment_id)
        refundability = payment_refundability(payment=payment)
        open_dispute = (
            Dispute.objects.filter(payment=payment)
            .exclude(status__in=CLOSED_DISPUTE_STATUSES)
            .exists()
        )
        skipped = ""
        if open_dispute or payment.status == Payment.Status.DISPUTED:
            skipped = SKIP_OPEN_DISPUTE
        elif payment.is_captured and payment.amount_refunded >= payment.amount:
            skipped = SKIP_FULLY_REFUNDED
        elif refundability.blocked_reason or refundability.refundable <= 0:
            skipped = SKIP_NOT_REFUNDABLE.format(
                reason=refundability.blocked_reason or "nothing is left to refund."
            )
        if skipped:
            audit_record(
                acting_user=None,
                action=AUDIT_FRAUD_PROPOSAL_SKIPPED,
                target=locked,
                amount=payment.amount,
                currency=payment.currency,
                reason=skipped,
                details={"payment_id": payment.pk},
            )
            return None
        return refund_request_create(
            payment=payment,
            amount=refundability.refundable,
            acting_user=None,
            reason=RefundRequest.Reason.FRAUDULENT,
            admin_notes=FRAUD_PROPOSAL_NOTE.format(alert=locked.pk, warning=locked.stripe_id),
            source=RefundRequest.Source.FRAUD,
            # The card's owner is the victim; the customer on file may be the fraudster.
            notify_customer=False,
            fraud_alert=locked,
        )


def _raise(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    if refusal.permission:
        raise RefundPermissionError(refusal.message)
    raise RefundError(refusal.message)


def _check_can_decide(
    *, refund_request: RefundRequest, acting_user, decision: str, customer_blocked=None
) -> None:
    _raise(
        decision_refusal(
            user=acting_user,
            refund_request=refund_request,
            decision=decision,
            customer_blocked=customer_blocked,
        )
    )


def refund_request_approve(
    *,
    refund_request: RefundRequest,
    acting_user,
    note: str = "",
    client: ClientInfo | None = None,
) -> RefundRequest:
    """Approve a pending request and queue its processing (after commit). Raises
    RefundError: not pending, the approver's own request, above the refundable amount, payment
    no longer refundable; RefundPermissionError: no approve / senior permission."""
    with transaction.atomic():
        payment = _locked_payment(refund_request.payment_id)
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request.pk)
        # Permission, pending, four-eyes, senior limit: the decision page's own question.
        _check_can_decide(
            refund_request=locked,
            acting_user=acting_user,
            decision=APPROVE,
            customer_blocked=_customer_blocked(payment),
        )
        _check_refundable(
            payment=payment, refund_request=locked, amount=locked.amount, currency=locked.currency
        )
        now = timezone.now()
        locked.status = RefundRequest.Status.APPROVED
        locked.approved_by = acting_user
        locked.approved_at = now
        # Derived from our row and committed before any Stripe call (DESIGN decision 3).
        locked.idempotency_key = f"refund:{locked.pk}"
        if note:
            locked.admin_notes = f"{locked.admin_notes}\n{note}".strip()
        locked.save(
            update_fields=[
                "status",
                "approved_by",
                "approved_at",
                "idempotency_key",
                "admin_notes",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_APPROVE,
            refund_request=locked,
            acting_user=acting_user,
            client=client,
            reason=note,
        )
        transaction.on_commit(lambda: _enqueue_processing(locked.pk, acting_user.pk), robust=True)
    return locked


def _enqueue_processing(refund_request_id: int, acting_user_id: int | None) -> None:
    from django_q.tasks import async_task

    async_task(
        "refunds.tasks.refund_request_process_task",
        refund_request_id,
        acting_user_id,
        task_name=f"refund-request-{refund_request_id}",
    )


def refund_request_reject(
    *,
    refund_request: RefundRequest,
    acting_user,
    reason: str,
    client: ClientInfo | None = None,
) -> RefundRequest:
    """Reject a pending request with a reason (required). Raises RefundError /
    RefundPermissionError; nothing changes then."""
    reason = (reason or "").strip()
    if not reason:
        raise RefundError(ERR_REJECTION_REASON_REQUIRED)
    with transaction.atomic():
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request.pk)
        _check_can_decide(refund_request=locked, acting_user=acting_user, decision=REJECT)
        locked.status = RefundRequest.Status.REJECTED
        locked.rejection_reason = reason
        locked.rejected_by = acting_user
        locked.rejected_at = timezone.now()
        locked.save(
            update_fields=["status", "rejection_reason", "rejected_by", "rejected_at", "updated_at"]
        )
        _audit(
            action=AUDIT_REJECT,
            refund_request=locked,
            acting_user=acting_user,
            client=client,
            reason=reason,
        )
    return locked


# --- Processing ------------------------------------------------------------------------------


def _claim(refund_request_id: int, *, acting_user=None) -> RefundRequest | None:
    """Under row locks (Payment, then RefundRequest), move APPROVED -> PROCESSING, or take over
    a PROCESSING request whose worker died, and commit the claim before any Stripe call.

    A first claim re-checks the payment and the amount as approval did: when they no longer
    allow the refund (disputed since, say) the request is CANCELED instead, and returned so.
    A take-over is not checked here (an earlier attempt may have reached Stripe; the caller
    looks first, then checks). None when there is nothing to do or another worker holds a
    live claim."""
    lease = timedelta(seconds=settings.REFUND_PROCESSING_LEASE_SECONDS)
    payment_id = RefundRequest.objects.values_list("payment_id", flat=True).get(
        pk=refund_request_id
    )
    with transaction.atomic():
        payment = _locked_payment(payment_id)
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request_id)
        now = timezone.now()
        if locked.status == RefundRequest.Status.PROCESSING:
            started = locked.processing_started_at
            if started is not None and started > now - lease:
                return None  # another worker is on it
        elif locked.status != RefundRequest.Status.APPROVED:
            return None
        else:
            reason = _not_refundable_reason(payment=payment, refund_request=locked)
            if reason:
                return _cancel_before_stripe(locked, reason=reason, acting_user=acting_user)
        locked.status = RefundRequest.Status.PROCESSING
        locked.processing_started_at = now
        locked.processing_attempts += 1
        locked.idempotency_key = locked.idempotency_key or f"refund:{locked.pk}"
        locked.save(
            update_fields=[
                "status",
                "processing_started_at",
                "processing_attempts",
                "idempotency_key",
                "updated_at",
            ]
        )
    return locked


def _not_refundable_reason(*, payment: Payment, refund_request: RefundRequest) -> str:
    """Why an approved (or claimed) request may no longer be refunded, or "": the payment's
    state and the amount, as approval checked them. Call with both rows locked."""
    try:
        _check_refundable(
            payment=payment,
            refund_request=refund_request,
            amount=refund_request.amount,
            currency=refund_request.currency,
        )
    except RefundError as exc:
        return str(exc)
    return ""


def _cancel_before_stripe(locked: RefundRequest, *, reason: str, acting_user) -> RefundRequest:
    """End a request that must not reach Stripe as CANCELED, the reason on the request (the
    queue shows it); its amount stops counting as in flight. Inside the caller's transaction,
    with the request locked."""
    message = rules.CANCELED_BEFORE_STRIPE.format(reason=reason)
    locked.status = RefundRequest.Status.CANCELED
    locked.failure_message = message
    locked.processing_started_at = None
    locked.save(update_fields=["status", "failure_message", "processing_started_at", "updated_at"])
    _audit(
        action=AUDIT_CANCEL,
        refund_request=locked,
        acting_user=acting_user,
        client=None,
        reason=message,
    )
    logger.warning("refund request %s canceled before Stripe: %s", locked.pk, reason)
    return locked


def _recheck_claimed(refund_request_id: int, *, acting_user) -> RefundRequest | None:
    """For a resumed claim that found no refund in Stripe: the first claim's check, under the
    locks. The CANCELED request when the refund may no longer be made, else None."""
    with transaction.atomic():
        payment_id = RefundRequest.objects.values_list("payment_id", flat=True).get(
            pk=refund_request_id
        )
        payment = _locked_payment(payment_id)
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request_id)
        if locked.status != RefundRequest.Status.PROCESSING:
            return locked  # a concurrent resumer settled it
        reason = _not_refundable_reason(payment=payment, refund_request=locked)
        if reason:
            return _cancel_before_stripe(locked, reason=reason, acting_user=acting_user)
    return None


def _find_existing_stripe_refund(refund_request: RefundRequest):
    """The refund Stripe already made for this request in an earlier attempt, if any. Found
    by the metadata we attach to every refund we create."""
    refunds = gateway.stripe_refund_list(
        payment_intent_id=refund_request.payment.stripe_payment_intent_id
    )
    for stripe_refund in refunds:
        metadata = getattr(stripe_refund, "metadata", None) or {}
        if str(metadata.get("refund_request_id", "")) == str(refund_request.pk) or (
            metadata.get("idempotency_key") == refund_request.idempotency_key
        ):
            return stripe_refund
    return None


def refund_request_process(*, refund_request: RefundRequest, acting_user=None) -> RefundRequest:
    """Refund an approved request through Stripe, exactly once. Safe to call any number of
    times, concurrently, and after a crash: only the worker that claims the request calls
    Stripe, always with the request's idempotency key, and a resumed attempt first looks the
    refund up in Stripe. A payment that may no longer be refunded (disputed, refunded in
    full, failed or canceled since approval, or too little left) ends the request as CANCELED
    with no Stripe call. Returns the request as it stands afterwards."""
    claimed = _claim(refund_request.pk, acting_user=acting_user)
    if claimed is None:
        return RefundRequest.objects.get(pk=refund_request.pk)
    if claimed.status != RefundRequest.Status.PROCESSING:
        return claimed  # canceled by the check
    payment = claimed.payment
    try:
        stripe_refund = None
        if claimed.processing_attempts > 1:
            # An earlier attempt may have reached Stripe before dying: never refund twice.
            stripe_refund = _find_existing_stripe_refund(claimed)
            if stripe_refund is None:
                settled = _recheck_claimed(claimed.pk, acting_user=acting_user)
                if settled is not None:
                    return settled
        if stripe_refund is None:
            stripe_refund = gateway.stripe_refund_create(
                payment_intent_id=payment.stripe_payment_intent_id,
                amount=claimed.amount,
                idempotency_key=claimed.idempotency_key,
                # localstripe (STRIPE_LOCALSTRIPE_COMPAT) refuses `reason`; Stripe takes it.
                reason=None if settings.STRIPE_LOCALSTRIPE_COMPAT else (claimed.reason or None),
                metadata={
                    "refund_request_id": str(claimed.pk),
                    "idempotency_key": claimed.idempotency_key,
                },
            )
    except (CardDeclined, InvalidRequest) as exc:
        # Stripe answered and said no: nothing was refunded, the amount is free again.
        return _record_failure(claimed.pk, message=str(exc), acting_user=acting_user)
    except GatewayError as exc:
        # Outcome unknown (timeout, connection, rate limit, 5xx): Stripe may have refunded.
        # Stay PROCESSING and release the claim; the next run looks the refund up first.
        _release_claim(claimed.pk, message=str(exc))
        logger.warning("refund request %s: gateway error, will resume: %s", claimed.pk, exc)
        return RefundRequest.objects.get(pk=claimed.pk)
    if getattr(stripe_refund, "status", "") in ("failed", "canceled"):
        message = getattr(stripe_refund, "failure_reason", "") or f"Stripe: {stripe_refund.status}"
        return _record_failure(
            claimed.pk, message=message, acting_user=acting_user, stripe_refund=stripe_refund
        )
    return _record_success(claimed.pk, stripe_refund=stripe_refund, acting_user=acting_user)


def _release_claim(refund_request_id: int, *, message: str) -> None:
    RefundRequest.objects.filter(
        pk=refund_request_id, status=RefundRequest.Status.PROCESSING
    ).update(processing_started_at=None, failure_message=message[:2000], updated_at=timezone.now())


def _record_failure(
    refund_request_id: int, *, message: str, acting_user, stripe_refund=None
) -> RefundRequest:
    with transaction.atomic():
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request_id)
        if locked.status != RefundRequest.Status.PROCESSING:
            return locked
        locked.status = RefundRequest.Status.FAILED
        locked.failure_message = message
        locked.processing_started_at = None
        if stripe_refund is not None:
            locked.stripe_refund_id = stripe_refund.id
        locked.save(
            update_fields=[
                "status",
                "failure_message",
                "processing_started_at",
                "stripe_refund_id",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_PROCESS,
            refund_request=locked,
            acting_user=acting_user,
            client=None,
            reason=message,
            result=AdminAction.Result.FAILURE,
        )
    return locked


def _record_success(refund_request_id: int, *, stripe_refund, acting_user) -> RefundRequest:
    """One transaction: the request, the payment's refunded amount and status, the Refund
    mirror row, the hour balance (payments.hours, through upsert_refunds), the audit row, the
    queued e-mail. Then refund_processed."""
    with transaction.atomic():
        request_row = RefundRequest.objects.only("payment_id").get(pk=refund_request_id)
        payment = _locked_payment(request_row.payment_id)
        locked = RefundRequest.objects.select_for_update().get(pk=refund_request_id)
        if locked.status == RefundRequest.Status.PROCESSED:
            return locked  # a concurrent resumer recorded it already
        if locked.status != RefundRequest.Status.PROCESSING:
            logger.error(
                "refund request %s: Stripe refund %s arrived while the request is %s",
                locked.pk,
                stripe_refund.id,
                locked.status,
            )
            return locked
        # The same upsert the Stripe sync and webhooks use: the mirror row, then the payment's
        # amount_refunded / status / net re-derived from it. Whoever gets there first (this,
        # a webhook or a sync run), the result is the same.
        upsert_refunds([_with_payment_intent(stripe_refund, payment)])
        payment.refresh_from_db()
        locked.status = RefundRequest.Status.PROCESSED
        locked.stripe_refund_id = stripe_refund.id
        locked.processed_at = timezone.now()
        locked.processing_started_at = None
        locked.failure_message = ""
        locked.save(
            update_fields=[
                "status",
                "stripe_refund_id",
                "processed_at",
                "processing_started_at",
                "failure_message",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_PROCESS,
            refund_request=locked,
            acting_user=acting_user,
            client=None,
            details={"stripe_refund_id": stripe_refund.id, "stripe_status": stripe_refund.status},
        )
        if locked.notify_customer:
            # Queued in this transaction (the outbox): it commits with the refund's record.
            _notify_customer(locked, payment)
        transaction.on_commit(
            lambda: refund_processed.send(
                sender=RefundRequest,
                payment=payment,
                refund_amount=locked.amount,
                stripe_refund_id=locked.stripe_refund_id,
                refund_request=locked,
            ),
            robust=True,
        )
    return locked


def _with_payment_intent(stripe_refund, payment: Payment):
    """Stripe answers with the payment intent id; a fake or a partial answer may not."""
    if getattr(stripe_refund, "payment_intent_id", ""):
        return stripe_refund
    return dataclasses.replace(stripe_refund, payment_intent_id=payment.stripe_payment_intent_id)


EMAIL_SUBJECT = "Your refund of {amount} is on its way"
EMAIL_BODY = (
    "Hello{name},\n\n"
    "we have refunded {amount} for {what} (payment {payment}).\n"
    "Depending on your bank it can take 5-10 business days to appear on your statement.\n\n"
    "Refund reference: {refund_id}\n"
)


def _notify_customer(refund_request: RefundRequest, payment: Payment) -> None:
    """Queue the refund confirmation in the caller's transaction (backoffice/outbox.py)."""
    customer = payment.customer
    if customer is None or not customer.email:
        return
    amount = format_money(refund_request.amount, refund_request.currency)
    queue_customer_email(
        to=customer.email,
        subject=EMAIL_SUBJECT.format(amount=amount),
        body=EMAIL_BODY.format(
            name=f" {customer.name}" if customer.name else "",
            amount=amount,
            what=payment.description or payment.get_product_kind_display(),
            payment=payment.stripe_payment_intent_id,
            refund_id=refund_request.stripe_refund_id,
        ),
        kind=CustomerEmail.Kind.REFUND_CONFIRMATION,
        cause=refund_request,
        cause_repr=f"Refund request #{refund_request.pk} ({amount})",
    )


def refund_requests_process_pending(*, limit: int = 500) -> dict:
    """Process approved requests and resume PROCESSING ones whose worker died or whose
    Stripe call had an unknown outcome. For `manage_payments --process-pending-refunds`."""
    lease = timedelta(seconds=settings.REFUND_PROCESSING_LEASE_SECONDS)
    now = timezone.now()
    ids = list(
        RefundRequest.objects.filter(
            Q(status=RefundRequest.Status.APPROVED)
            | Q(status=RefundRequest.Status.PROCESSING, processing_started_at__isnull=True)
            | Q(status=RefundRequest.Status.PROCESSING, processing_started_at__lte=now - lease)
        )
        .order_by("approved_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {
        "candidates": len(ids),
        "processed": 0,
        "failed": 0,
        "canceled": 0,
        "still_processing": 0,
    }
    outcomes = {
        RefundRequest.Status.PROCESSED: "processed",
        RefundRequest.Status.FAILED: "failed",
        RefundRequest.Status.CANCELED: "canceled",
    }
    for pk in ids:
        result = refund_request_process(refund_request=RefundRequest(pk=pk))
        counts[outcomes.get(result.status, "still_processing")] += 1
    return counts
