"""Retry a failed payment: confirm its payment intent again with the customer's current
default payment method.

The retry's state lives on its own row, PaymentRetry; each staff action also writes one
AdminAction (backoffice.audit.audit_record), which is never edited afterwards.

Flow (DESIGN.md, "Out to Stripe"):
1. Under a row lock on the Payment, then on its open retry: check the rules, write the retry
   (`processing`, idempotency key `payment_retry:<pk>`) and the audit row; commit.
2. Outside any transaction: confirm the intent with that key.
3. Under the same locks: record the outcome on the retry and mirror the intent through
   payments.sync.

At most one retry per payment is open (processing, or unknown after a timeout / 5xx): a
click while its last attempt is younger than IN_FLIGHT_WINDOW is refused; after that, the
SAME retry is sent again with the SAME key and payment method, so Stripe answers the first
outcome instead of charging twice. A crash between the Stripe call and step 3 leaves the
retry `processing`, and is healed the same way. Lock order: Payment, then PaymentRetry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from payments import gateway, sync
from payments.exceptions import (
    CardDeclined,
    GatewayError,
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
)
from payments.models import Customer, Payment, PaymentMethod, PaymentRetry

ACTION = "payment_retry"
PERM_RETRY = "payments.retry_payment"

ERROR_NO_PERMISSION = "You do not have permission to retry payments."
ERROR_NOT_FAILED = "Only a failed payment can be retried; this one is {status}."
ERROR_NO_CUSTOMER = "This payment has no customer, so there is no default payment method."
ERROR_NO_DEFAULT_METHOD = "The customer has no default payment method to retry with."
ERROR_REASON_REQUIRED = "Give a reason for the retry."
ERROR_CUSTOMER_BLOCKED = (
    "The customer is blocked ({reason}): their payments cannot be retried. Unblock them first "
    "if this was a mistake."
)
ERROR_IN_FLIGHT = "A retry of this payment is already in progress; wait for its result."
MESSAGE_SUCCEEDED = "Payment retried with {method}: it is now {status}."
MESSAGE_DECLINED = "The retry was declined ({code}); the payment stays failed."
MESSAGE_UNKNOWN = (
    "Stripe gave no clear answer; the retry may have gone through. A new retry re-sends the "
    "same idempotency key, so it cannot charge twice."
)

# An open retry whose last attempt is younger than this is treated as in flight (a double
# submit); an older one was interrupted and is re-sent with its own key.
IN_FLIGHT_WINDOW = timedelta(minutes=2)


class PaymentRetryNotAllowed(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class PaymentRetryResult:
    succeeded: bool
    status: str  # the payment's local status after the retry
    message: str
    idempotency_key: str
    retry_id: int
    audit_id: int


def payment_retry_refusal(
    *, user, payment: Payment, customer_blocked_at=None, customer_block_reason: str = ""
) -> str:
    """Why `user` may not retry `payment` now, or "" when they may, from what is known before
    the click: the permission, the payment's status, its customer and the customer's block
    (`customer_blocked_at` / `_reason`, read by the caller; under the payment's lock when about
    to charge). The payment page disables its button with this reason; payment_retry asks
    the same question again under the lock (and then checks the retries in flight and the
    default payment method)."""
    if user is None or not user.has_perm(PERM_RETRY):
        return ERROR_NO_PERMISSION
    if payment.status != Payment.Status.FAILED:
        return ERROR_NOT_FAILED.format(status=payment.get_status_display().lower())
    if payment.customer_id is None:
        return ERROR_NO_CUSTOMER
    if customer_blocked_at is not None:
        return ERROR_CUSTOMER_BLOCKED.format(reason=customer_block_reason)
    return ""


def _start(
    *, payment: Payment, reason: str, acting_user, client: ClientInfo | None
) -> tuple[PaymentRetry, int]:
    """Step 1: the retry to send (a new one, or the interrupted open one), marked as an
    attempt in flight, and its audit row, committed. Returns (retry, audit row id)."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        # Read under the payment's lock: a block committed before this point is seen.
        blocked_at, block_reason = (
            Customer.objects.values_list("blocked_at", "block_reason").get(pk=locked.customer_id)
            if locked.customer_id is not None
            else (None, "")
        )
        refusal = payment_retry_refusal(
            user=acting_user,
            payment=locked,
            customer_blocked_at=blocked_at,
            customer_block_reason=block_reason,
        )
        if refusal:
            raise PaymentRetryNotAllowed(refusal)
        now = timezone.now()
        retry = (
            PaymentRetry.objects.select_for_update()
            .filter(payment=locked, status__in=PaymentRetry.OPEN_STATUSES)
            .first()
        )
        if retry is not None:
            if retry.last_attempt_at and retry.last_attempt_at > now - IN_FLIGHT_WINDOW:
                raise PaymentRetryNotAllowed(ERROR_IN_FLIGHT)
            # Interrupted earlier: re-send it as it was (Stripe replays the first outcome).
        else:
            method = PaymentMethod.objects.filter(
                customer_id=locked.customer_id, is_default=True
            ).first()
            if method is None:
                raise PaymentRetryNotAllowed(ERROR_NO_DEFAULT_METHOD)
            retry = PaymentRetry.objects.create(
                payment=locked,
                amount=locked.amount,
                currency=locked.currency,
                stripe_payment_intent_id=locked.stripe_payment_intent_id,
                stripe_payment_method_id=method.stripe_id,
                requested_by=acting_user if getattr(acting_user, "pk", None) else None,
                reason=reason,
            )
            # Derived from our row and committed before the Stripe call (DESIGN decision 3).
            retry.idempotency_key = f"payment_retry:{retry.pk}"
        retry.status = PaymentRetry.Status.PROCESSING
        retry.attempts += 1
        retry.last_attempt_at = now
        retry.save()
        audit = audit_record(
            acting_user=acting_user,
            action=ACTION,
            target=locked,
            amount=retry.amount,
            currency=retry.currency,
            reason=reason,
            client=client,
            details={
                "payment_retry_id": retry.pk,
                "idempotency_key": retry.idempotency_key,
                "payment_method": retry.stripe_payment_method_id,
                "attempt": retry.attempts,
            },
        )
    return retry, audit.pk


def _finish(
    retry: PaymentRetry,
    *,
    status: str,
    intent=None,
    error: str = "",
    decline_code: str = "",
) -> tuple[PaymentRetry, Payment]:
    """Step 3: mirror the intent (if Stripe sent one) and record the outcome, unless a
    concurrent attempt of the same retry recorded one already. Returns the rows as stored."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=retry.payment_id)
        locked = PaymentRetry.objects.select_for_update().get(pk=retry.pk)
        if intent is not None:
            # The same upsert the sync and webhooks use; idempotent whoever comes first.
            sync.upsert_payment_intents([intent])
            payment.refresh_from_db()
        if locked.is_open:
            locked.status = status
            locked.error = error
            locked.decline_code = decline_code
            if intent is not None:
                locked.stripe_status = intent.status
            if status not in PaymentRetry.OPEN_STATUSES:
                locked.finished_at = timezone.now()
            locked.save()
    return locked, payment


def payment_retry(
    *,
    payment: Payment,
    reason: str,
    acting_user,
    client: ClientInfo | None = None,
) -> PaymentRetryResult:
    """Confirm a failed payment's intent again with the customer's default method, exactly
    once whatever the clicks, crashes and timeouts (see the module docstring).

    Raises PaymentRetryNotAllowed (no permission, no reason, not failed, no customer or
    default method, customer blocked, a retry in flight, or Stripe refused the request before
    any charge).
    A decline is not an exception: the result says so and the retry records it.
    """
    if acting_user is None or not acting_user.has_perm(PERM_RETRY):
        raise PaymentRetryNotAllowed(ERROR_NO_PERMISSION)
    reason = (reason or "").strip()
    if not reason:
        raise PaymentRetryNotAllowed(ERROR_REASON_REQUIRED)

    retry, audit_id = _start(payment=payment, reason=reason, acting_user=acting_user, client=client)

    # Outside any transaction: no row lock is held while Stripe thinks.
    try:
        intent = gateway.stripe_payment_intent_confirm(
            payment_intent_id=retry.stripe_payment_intent_id,
            payment_method_id=retry.stripe_payment_method_id,
            idempotency_key=retry.idempotency_key,
        )
    except CardDeclined as exc:
        code = exc.decline_code or exc.code or "declined"
        intent = gateway.stripe_payment_intent_retrieve(
            payment_intent_id=retry.stripe_payment_intent_id
        )
        retry, after = _finish(
            retry,
            status=PaymentRetry.Status.DECLINED,
            intent=intent,
            error=exc.message,
            decline_code=code,
        )
        message = MESSAGE_DECLINED.format(code=code)
    except (GatewayTimeout, GatewayServerError, IdempotencyConflict) as exc:
        # Unknown outcome (Stripe may have charged; a conflict means an earlier attempt with
        # this key is still running at Stripe): the retry stays open, so the next click
        # re-sends the same key and Stripe answers the first outcome.
        retry, after = _finish(retry, status=PaymentRetry.Status.UNKNOWN, error=exc.message)
        message = MESSAGE_UNKNOWN
    except GatewayError as exc:
        # Refused before any charge (invalid state, auth ...): this retry is over.
        _finish(retry, status=PaymentRetry.Status.FAILED, error=exc.message)
        raise PaymentRetryNotAllowed(exc.message) from exc
    else:
        retry, after = _finish(retry, status=PaymentRetry.Status.SUCCEEDED, intent=intent)
        method = PaymentMethod.objects.filter(stripe_id=retry.stripe_payment_method_id).first()
        message = MESSAGE_SUCCEEDED.format(
            method=method or retry.stripe_payment_method_id, status=after.get_status_display()
        )
    return PaymentRetryResult(
        succeeded=(
            retry.status == PaymentRetry.Status.SUCCEEDED and after.status != Payment.Status.FAILED
        ),
        status=after.status,
        message=message,
        idempotency_key=retry.idempotency_key,
        retry_id=retry.pk,
        audit_id=audit_id,
    )
