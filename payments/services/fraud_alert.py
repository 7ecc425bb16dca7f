"""Fraud alerts: opened from Stripe's early fraud warnings (webhook) or by staff, then
reviewed: dismissed as not fraud or confirmed. Confirmed fraud is a decision for finance to
act on (refund before a chargeback, block the customer); this service records it, audited."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from payments.models import FraudAlert, Payment

PERM_REVIEW = "payments.review_fraudalert"
ERR_NOTE_REQUIRED = "Write down why: a review needs a note."
ERR_ALREADY_REVIEWED = "Alert #{pk} was already {status} by {who}."
ERR_NOT_ALLOWED = "You may not review fraud alerts."
ERR_BAD_DECISION = "A review either dismisses or confirms an alert."
ERR_UNKNOWN_PAYMENT = "No payment here for charge {charge} / payment intent {intent}."


class FraudReviewError(Exception):
    """A review that cannot be made; the message is safe to show to staff."""


class UnknownPayment(Exception):
    """The warning is about a payment we do not mirror yet (retry once it is synced)."""


def fraud_alert_open_from_warning(*, warning: dict) -> tuple[FraudAlert, bool]:
    """Open (once) the alert for a Stripe early fraud warning object (`issfr_...`). Returns
    (alert, created). Raises UnknownPayment when its payment is not mirrored yet."""
    charge_id = warning.get("charge") or ""
    intent_id = warning.get("payment_intent") or ""
    match = Q(pk__in=[])
    if charge_id:
        match |= Q(stripe_charge_id=charge_id)
    if intent_id:
        match |= Q(stripe_payment_intent_id=intent_id)
    payment = Payment.objects.filter(match).order_by("pk").first()
    if payment is None:
        raise UnknownPayment(ERR_UNKNOWN_PAYMENT.format(charge=charge_id, intent=intent_id))
    created_ts = warning.get("created")
    defaults = {
        "payment": payment,
        "source": FraudAlert.Source.EARLY_FRAUD_WARNING,
        "fraud_type": warning.get("fraud_type") or "",
        "created": datetime.fromtimestamp(created_ts, UTC) if created_ts else timezone.now(),
    }
    try:
        with transaction.atomic():
            return FraudAlert.objects.get_or_create(stripe_id=warning["id"], defaults=defaults)
    except IntegrityError:  # the same warning delivered twice at once
        return FraudAlert.objects.get(stripe_id=warning["id"]), False


def fraud_alert_review(
    *,
    alert: FraudAlert,
    decision: str,
    note: str,
    acting_user,
    client: ClientInfo | None = None,
) -> FraudAlert:
    """Dismiss or confirm an open alert, under a row lock, with an AdminAction in the same
    transaction. Raises FraudReviewError (permission, missing note, already reviewed)."""
    if decision not in (FraudAlert.Status.DISMISSED, FraudAlert.Status.CONFIRMED):
        raise FraudReviewError(ERR_BAD_DECISION)
    if not acting_user.has_perm(PERM_REVIEW):
        raise FraudReviewError(ERR_NOT_ALLOWED)
    note = (note or "").strip()
    if not note:
        raise FraudReviewError(ERR_NOTE_REQUIRED)
    with transaction.atomic():
        locked = FraudAlert.objects.select_for_update().select_related("payment").get(pk=alert.pk)
        if locked.status != FraudAlert.Status.OPEN:
            raise FraudReviewError(
                ERR_ALREADY_REVIEWED.format(
                    pk=locked.pk,
                    status=locked.get_status_display().lower(),
                    who=locked.reviewed_by or "someone",
                )
            )
        locked.status = decision
        locked.reviewed_by = acting_user
        locked.reviewed_at = timezone.now()
        locked.review_note = note
        locked.save(
            update_fields=["status", "reviewed_by", "reviewed_at", "review_note", "updated_at"]
        )
        audit_record(
            acting_user=acting_user,
            action=f"fraud_alert_{decision}",
            target=locked,
            amount=locked.payment.amount,
            currency=locked.payment.currency,
            reason=note,
            client=client,
        )
    return locked
