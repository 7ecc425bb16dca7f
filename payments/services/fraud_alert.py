"""Fraud alerts: opened from Stripe's early fraud warnings (webhook), our rules or staff, then
reviewed through a small workflow:

    open --assign--> open (assigned)        any unresolved alert can be (re)assigned
    open --start investigating--> investigating
    open | investigating --resolve--> confirmed ("Resolved: confirmed fraud")
                                    | dismissed ("Resolved: false positive"), with a note

Only forward: a resolved alert never moves again, investigating never goes back to open.
Every step needs payments.review_fraudalert, takes the alert's row lock, re-checks the status
under it and writes one AdminAction in the same transaction. A step that is already done
(assigning to whoever has it, investigating twice, resolving again with the same outcome) is
a no-op that writes nothing and says so; so of two concurrent resolutions the second finds
the alert resolved: the same outcome is a no-op, a different one is refused. Confirmed fraud
is then for finance to act on (block the customer: payments.services.customer_block; a
refund: refunds reacts to signals.fraud_alert_confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from payments.models import FraudAlert, Payment
from payments.signals import fraud_alert_confirmed

PERM_REVIEW = "payments.review_fraudalert"
ERR_NOTE_REQUIRED = "Write down why: resolving an alert needs a note."
ERR_ALREADY_RESOLVED = "Alert #{pk} is already {status} (by {who}): it cannot change any more."
ERR_NOT_ALLOWED = "You may not review fraud alerts."
ERR_BAD_OUTCOME = "Resolve an alert either as confirmed fraud or as a false positive."
ERR_TRANSITION = "Alert #{pk} is {status}: it cannot go to {target}. Alerts only move forward."
MSG_ASSIGNED = "Alert #{pk} is now assigned to you."
MSG_REASSIGNED = "Alert #{pk} is now assigned to you (it was assigned to {previous})."
MSG_ALREADY_ASSIGNED = "Alert #{pk} is already assigned to you."
MSG_INVESTIGATING = "Alert #{pk}: investigation started."
MSG_ALREADY_INVESTIGATING = "Alert #{pk} is already being investigated (by {who})."
MSG_RESOLVED = "Alert #{pk}: {status}."
MSG_ALREADY_RESOLVED_SAME = "Alert #{pk} was already {status} by {who}; nothing changed."

# Audit action names (AdminAction.action). The resolution keeps the names it had before the
# workflow existed, so older audit rows read the same.
AUDIT_ASSIGN = "fraud_alert_assign"
AUDIT_INVESTIGATE = "fraud_alert_investigate"
AUDIT_RESOLVE = {
    FraudAlert.Status.CONFIRMED: "fraud_alert_confirmed",
    FraudAlert.Status.DISMISSED: "fraud_alert_dismissed",
}

# Forward moves only; each target lists the statuses it may come from.
ALLOWED_TRANSITIONS = {
    FraudAlert.Status.INVESTIGATING: frozenset({FraudAlert.Status.OPEN}),
    FraudAlert.Status.CONFIRMED: frozenset(FraudAlert.UNRESOLVED_STATUSES),
    FraudAlert.Status.DISMISSED: frozenset(FraudAlert.UNRESOLVED_STATUSES),
}
ERR_UNKNOWN_PAYMENT = "No payment here for charge {charge} / payment intent {intent}."


class FraudReviewError(Exception):
    """A review that cannot be made; the message is safe to show to staff."""


@dataclass(frozen=True)
class FraudReviewResult:
    """What a workflow step did: `changed` is False for a step that was already done."""

    alert: FraudAlert
    changed: bool
    message: str


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


def _check_allowed(acting_user) -> None:
    if acting_user is None or not acting_user.has_perm(PERM_REVIEW):
        raise FraudReviewError(ERR_NOT_ALLOWED)


def _who(user) -> str:
    return user.get_username() if user is not None else "someone"


def _locked(alert: FraudAlert) -> FraudAlert:
    # select_for_update: a real row lock on PostgreSQL; SQLite serialises writers anyway.
    return (
        # of=("self",): PostgreSQL cannot lock the nullable side of the outer joins (the
        # assignee and reviewer), and only the alert's row is ours to lock here.
        FraudAlert.objects.select_for_update(of=("self",))
        .select_related("payment", "assigned_to", "reviewed_by")
        .get(pk=alert.pk)
    )


def _refuse_transition(locked: FraudAlert, target: str) -> FraudReviewError:
    if locked.is_resolved:
        return FraudReviewError(
            ERR_ALREADY_RESOLVED.format(
                pk=locked.pk,
                status=locked.get_status_display().lower(),
                who=_who(locked.reviewed_by),
            )
        )
    return FraudReviewError(
        ERR_TRANSITION.format(
            pk=locked.pk,
            status=locked.get_status_display().lower(),
            target=FraudAlert.Status(target).label.lower(),
        )
    )


def _audit(*, locked: FraudAlert, action: str, acting_user, client, reason="", details=None):
    audit_record(
        acting_user=acting_user,
        action=action,
        target=locked,
        amount=locked.payment.amount,
        currency=locked.payment.currency,
        reason=reason,
        client=client,
        details={"payment_id": locked.payment_id, **(details or {})},
    )


def fraud_alert_assign(
    *, alert: FraudAlert, acting_user, client: ClientInfo | None = None
) -> FraudReviewResult:
    """Assign an unresolved alert to `acting_user` ("Assign to me"), taking it over from
    whoever had it (the message and the audit row name them). Raises FraudReviewError (no
    permission, alert resolved)."""
    _check_allowed(acting_user)
    with transaction.atomic():
        locked = _locked(alert)
        if locked.is_resolved:
            raise _refuse_transition(locked, locked.status)
        if locked.assigned_to_id == acting_user.pk:
            return FraudReviewResult(locked, False, MSG_ALREADY_ASSIGNED.format(pk=locked.pk))
        previous = locked.assigned_to
        locked.assigned_to = acting_user
        locked.assigned_at = timezone.now()
        locked.save(update_fields=["assigned_to", "assigned_at", "updated_at"])
        _audit(
            locked=locked,
            action=AUDIT_ASSIGN,
            acting_user=acting_user,
            client=client,
            details={"previous_assignee": previous.get_username() if previous else None},
        )
    if previous is None:
        return FraudReviewResult(locked, True, MSG_ASSIGNED.format(pk=locked.pk))
    return FraudReviewResult(
        locked, True, MSG_REASSIGNED.format(pk=locked.pk, previous=_who(previous))
    )


def fraud_alert_start_investigating(
    *, alert: FraudAlert, acting_user, client: ClientInfo | None = None
) -> FraudReviewResult:
    """open -> investigating; an unassigned alert is assigned to `acting_user` on the way.
    Already investigating: a no-op. Raises FraudReviewError (no permission, resolved)."""
    _check_allowed(acting_user)
    target = FraudAlert.Status.INVESTIGATING
    with transaction.atomic():
        locked = _locked(alert)
        if locked.status == target:
            return FraudReviewResult(
                locked,
                False,
                MSG_ALREADY_INVESTIGATING.format(pk=locked.pk, who=_who(locked.assigned_to)),
            )
        if locked.status not in ALLOWED_TRANSITIONS[target]:
            raise _refuse_transition(locked, target)
        now = timezone.now()
        locked.status = target
        locked.investigating_since = now
        fields = ["status", "investigating_since", "updated_at"]
        if locked.assigned_to_id is None:
            locked.assigned_to = acting_user
            locked.assigned_at = now
            fields += ["assigned_to", "assigned_at"]
        locked.save(update_fields=fields)
        _audit(locked=locked, action=AUDIT_INVESTIGATE, acting_user=acting_user, client=client)
    return FraudReviewResult(locked, True, MSG_INVESTIGATING.format(pk=locked.pk))


def fraud_alert_resolve(
    *,
    alert: FraudAlert,
    outcome: str,
    note: str,
    acting_user,
    client: ClientInfo | None = None,
) -> FraudReviewResult:
    """Resolve an open or investigating alert as confirmed fraud or a false positive, with a
    note. Resolving again with the same outcome is a no-op (a double submit, or the second of
    two concurrent reviewers); another outcome is refused. A confirmation sends
    signals.fraud_alert_confirmed after commit. Raises FraudReviewError (permission, bad
    outcome, missing note, alert resolved otherwise)."""
    if outcome not in AUDIT_RESOLVE:
        raise FraudReviewError(ERR_BAD_OUTCOME)
    _check_allowed(acting_user)
    note = (note or "").strip()
    if not note:
        raise FraudReviewError(ERR_NOTE_REQUIRED)
    with transaction.atomic():
        locked = _locked(alert)
        if locked.status == outcome:
            return FraudReviewResult(
                locked,
                False,
                MSG_ALREADY_RESOLVED_SAME.format(
                    pk=locked.pk,
                    status=locked.get_status_display().lower(),
                    who=_who(locked.reviewed_by),
                ),
            )
        if locked.status not in ALLOWED_TRANSITIONS[outcome]:
            raise _refuse_transition(locked, outcome)
        previous_status = locked.status
        locked.status = outcome
        locked.reviewed_by = acting_user
        locked.reviewed_at = timezone.now()
        locked.review_note = note
        locked.save(
            update_fields=["status", "reviewed_by", "reviewed_at", "review_note", "updated_at"]
        )
        _audit(
            locked=locked,
            action=AUDIT_RESOLVE[outcome],
            acting_user=acting_user,
            client=client,
            reason=note,
            details={"from_status": previous_status},
        )
        if outcome == FraudAlert.Status.CONFIRMED:
            transaction.on_commit(
                lambda: fraud_alert_confirmed.send(sender=FraudAlert, alert=locked), robust=True
            )
    return FraudReviewResult(
        locked,
        True,
        MSG_RESOLVED.format(pk=locked.pk, status=locked.get_status_display().lower()),
    )
