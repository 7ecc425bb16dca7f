"""Block and unblock a customer: our own decision (Stripe knows nothing of it), usually after a
fraud review.

A blocked customer's payments cannot be retried (payments.services.payment_retry refuses
them), refunds to them need a senior approver (refunds.rules.needs_senior_approval), and every
page that shows them shows a "Blocked" badge. Both steps need payments.block_customer, a
reason (block) or a note (unblock), take the customer's row lock and write one AdminAction in
the same transaction: the audit trail is the block history (the Customer row keeps only the
current block). Blocking a blocked customer, or unblocking one who is not, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.formats import format_datetime
from payments.models import Customer, FraudAlert

PERM_BLOCK = "payments.block_customer"

ERR_NOT_ALLOWED = "You may not block or unblock customers."
ERR_REASON_REQUIRED = "Write down why the customer is blocked."
ERR_NOTE_REQUIRED = "Write down why the customer is unblocked."
MSG_BLOCKED = "{customer} is blocked."
MSG_ALREADY_BLOCKED = "{customer} was already blocked by {who} on {when}; nothing changed."
MSG_UNBLOCKED = "{customer} is no longer blocked."
MSG_NOT_BLOCKED = "{customer} is not blocked; nothing changed."

AUDIT_BLOCK = "customer_block"
AUDIT_UNBLOCK = "customer_unblock"


class CustomerBlockError(Exception):
    """A block or unblock that cannot be made; the message is safe to show to staff."""


@dataclass(frozen=True)
class CustomerBlockResult:
    customer: Customer
    changed: bool
    message: str


def _locked(customer: Customer) -> Customer:
    # of=("self",): PostgreSQL cannot lock the nullable side of an outer join (blocked_by).
    return (
        Customer.objects.select_for_update(of=("self",))
        .select_related("blocked_by")
        .get(pk=customer.pk)
    )


def _check(acting_user, text: str, error: str) -> str:
    if acting_user is None or not acting_user.has_perm(PERM_BLOCK):
        raise CustomerBlockError(ERR_NOT_ALLOWED)
    text = (text or "").strip()
    if not text:
        raise CustomerBlockError(error)
    return text


def customer_block(
    *,
    customer: Customer,
    reason: str,
    acting_user,
    fraud_alert: FraudAlert | None = None,
    client: ClientInfo | None = None,
) -> CustomerBlockResult:
    """Block `customer` (from `fraud_alert`'s page when given: the audit row names it).
    Raises CustomerBlockError (no permission, no reason)."""
    reason = _check(acting_user, reason, ERR_REASON_REQUIRED)
    with transaction.atomic():
        locked = _locked(customer)
        if locked.is_blocked:
            who = locked.blocked_by.get_username() if locked.blocked_by else "someone"
            return CustomerBlockResult(
                locked,
                False,
                MSG_ALREADY_BLOCKED.format(
                    customer=locked,
                    who=who,
                    when=format_datetime(locked.blocked_at),
                ),
            )
        locked.blocked_at = timezone.now()
        locked.blocked_by = acting_user
        locked.block_reason = reason
        locked.save(update_fields=["blocked_at", "blocked_by", "block_reason", "updated_at"])
        audit_record(
            acting_user=acting_user,
            action=AUDIT_BLOCK,
            target=locked,
            reason=reason,
            client=client,
            details={"fraud_alert_id": fraud_alert.pk if fraud_alert is not None else None},
        )
    return CustomerBlockResult(locked, True, MSG_BLOCKED.format(customer=locked))


def customer_unblock(
    *, customer: Customer, note: str, acting_user, client: ClientInfo | None = None
) -> CustomerBlockResult:
    """Lift the block, with a note (required). The audit row keeps the block it lifted.
    Raises CustomerBlockError (no permission, no note)."""
    note = _check(acting_user, note, ERR_NOTE_REQUIRED)
    with transaction.atomic():
        locked = _locked(customer)
        if not locked.is_blocked:
            return CustomerBlockResult(locked, False, MSG_NOT_BLOCKED.format(customer=locked))
        lifted = {
            "blocked_at": locked.blocked_at.isoformat(),
            "blocked_by": locked.blocked_by.get_username() if locked.blocked_by else None,
            "block_reason": locked.block_reason,
        }
        locked.blocked_at = None
        locked.blocked_by = None
        locked.block_reason = ""
        locked.save(update_fields=["blocked_at", "blocked_by", "block_reason", "updated_at"])
        audit_record(
            acting_user=acting_user,
            action=AUDIT_UNBLOCK,
            target=locked,
            reason=note,
            client=client,
            details=lifted,
        )
    return CustomerBlockResult(locked, True, MSG_UNBLOCKED.format(customer=locked))
