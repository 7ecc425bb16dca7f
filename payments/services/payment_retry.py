"""Retry a failed payment: confirm its payment intent again with the customer's current
default payment method.

Flow (DESIGN.md, "Out to Stripe"): under a row lock, check the payment and write the audit
row with the idempotency key (`pending`), commit; call Stripe outside the transaction; record
the outcome on the audit row and mirror the payment intent through payments.sync.

The key is `payment:<pk>:retry:<n>`, n counting this payment's finished retries. A second
submit while one is in flight is refused; a retry whose outcome was never recorded (crash, or
a timeout) is sent again with the SAME key, so Stripe answers the first result instead of
charging twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway, sync
from payments.exceptions import CardDeclined, GatewayError, GatewayServerError, GatewayTimeout
from payments.models import Payment, PaymentMethod

ACTION = "payment_retry"
TARGET_TYPE = "payments.payment"

ERROR_NOT_FAILED = "Only a failed payment can be retried; this one is {status}."
ERROR_NO_CUSTOMER = "This payment has no customer, so there is no default payment method."
ERROR_NO_DEFAULT_METHOD = "The customer has no default payment method to retry with."
ERROR_REASON_REQUIRED = "Give a reason for the retry."
ERROR_IN_FLIGHT = "A retry of this payment is already in progress; wait for its result."
MESSAGE_SUCCEEDED = "Payment retried with {method}: it is now {status}."
MESSAGE_DECLINED = "The retry was declined ({code}); the payment stays failed."
MESSAGE_UNKNOWN = (
    "Stripe gave no clear answer; the retry may have gone through. A new retry re-sends the "
    "same idempotency key, so it cannot charge twice."
)

# A pending retry younger than this is treated as in flight (a double submit); an older one
# was interrupted and is re-sent with its own key.
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
    audit_id: int


def _idempotency_key(payment: Payment, attempt: int) -> str:
    return f"payment:{payment.pk}:retry:{attempt}"


def payment_retry(
    *,
    payment: Payment,
    reason: str,
    acting_user,
    ip_address: str | None = None,
    user_agent: str = "",
) -> PaymentRetryResult:
    """Confirm a failed payment's intent again with the customer's default method.

    Raises PaymentRetryNotAllowed (not failed, no default method, no reason, in flight).
    A decline is not an exception: the result says so and the audit row records it.
    """
    reason = (reason or "").strip()
    if not reason:
        raise PaymentRetryNotAllowed(ERROR_REASON_REQUIRED)

    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != Payment.Status.FAILED:
            raise PaymentRetryNotAllowed(
                ERROR_NOT_FAILED.format(status=locked.get_status_display().lower())
            )
        if locked.customer_id is None:
            raise PaymentRetryNotAllowed(ERROR_NO_CUSTOMER)
        method = PaymentMethod.objects.filter(
            customer_id=locked.customer_id, is_default=True
        ).first()
        if method is None:
            raise PaymentRetryNotAllowed(ERROR_NO_DEFAULT_METHOD)

        previous = AdminAction.objects.filter(
            action=ACTION, target_type=TARGET_TYPE, target_id=str(locked.pk)
        )
        pending = previous.filter(details__state="pending").order_by("-id").first()
        if pending is not None and pending.created_at > timezone.now() - IN_FLIGHT_WINDOW:
            raise PaymentRetryNotAllowed(ERROR_IN_FLIGHT)
        if pending is not None:
            # Interrupted earlier: re-send under its key (Stripe replays the first outcome).
            key = pending.details["idempotency_key"]
            pending.details = {**pending.details, "state": "superseded"}
            pending.save(update_fields=["details"])
        else:
            key = _idempotency_key(locked, previous.count() + 1)
        audit = AdminAction.objects.create(
            actor=acting_user,
            action=ACTION,
            target_type=TARGET_TYPE,
            target_id=str(locked.pk),
            target_repr=str(locked)[:255],
            amount=locked.amount,
            currency=locked.currency,
            reason=reason,
            ip_address=ip_address,
            user_agent=(user_agent or "")[:500],
            details={
                "state": "pending",
                "idempotency_key": key,
                "payment_method": method.stripe_id,
            },
        )

    # Outside any transaction: no row lock is held while Stripe thinks.
    outcome: dict = {}
    try:
        intent = gateway.stripe_payment_intent_confirm(
            payment_intent_id=locked.stripe_payment_intent_id,
            payment_method_id=method.stripe_id,
            idempotency_key=key,
        )
        succeeded = True
    except CardDeclined as exc:
        succeeded = False
        outcome = {"error": exc.message, "code": exc.decline_code or exc.code or "declined"}
        intent = gateway.stripe_payment_intent_retrieve(
            payment_intent_id=locked.stripe_payment_intent_id
        )
    except (GatewayTimeout, GatewayServerError):
        # Unknown outcome (Stripe may have charged): leave the audit row pending, so the next
        # retry re-sends the same key and Stripe answers the first outcome.
        return PaymentRetryResult(
            succeeded=False,
            status=locked.status,
            message=MESSAGE_UNKNOWN,
            idempotency_key=key,
            audit_id=audit.pk,
        )
    except GatewayError as exc:
        # Refused before any charge (invalid state, auth ...): the key was not consumed.
        with transaction.atomic():
            audit.result = AdminAction.Result.FAILURE
            audit.details = {**audit.details, "state": "error", "error": exc.message}
            audit.save(update_fields=["result", "details"])
        raise PaymentRetryNotAllowed(exc.message) from exc

    with transaction.atomic():
        sync.upsert_payment_intents([intent])
        locked.refresh_from_db()
        audit.result = AdminAction.Result.SUCCESS if succeeded else AdminAction.Result.FAILURE
        audit.details = {
            **audit.details,
            "state": "succeeded" if succeeded else "declined",
            "payment_status": locked.status,
            **outcome,
        }
        audit.save(update_fields=["result", "details"])

    if succeeded:
        message = MESSAGE_SUCCEEDED.format(method=method, status=locked.get_status_display())
    else:
        message = MESSAGE_DECLINED.format(code=outcome["code"])
    return PaymentRetryResult(
        succeeded=succeeded and locked.status != Payment.Status.FAILED,
        status=locked.status,
        message=message,
        idempotency_key=key,
        audit_id=audit.pk,
    )
