"""Repairs and retention: `manage_payments --fix-inconsistencies` and `--cleanup-old-data`.

Repairs only ever derive a column from the rows it summarises (a payment's refunded amount
from its succeeded refunds, net from amount and fees, a balance from its ledger); they never
invent money. Each repaired row gets an AdminAction in the same transaction, so the audit
trail says what was changed and from what.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Success

from backoffice.audit import audit_record
from management.models import SyncRun
from payments.models import BalanceEntry, Payment, Refund, StudentBalance, WebhookEvent

ACTION_FIX = "fix_inconsistency"
# Statuses the refunded amount decides; disputed payments keep their status.
REFUND_DRIVEN_STATUSES = (
    Payment.Status.SUCCEEDED,
    Payment.Status.PARTIALLY_REFUNDED,
    Payment.Status.REFUNDED,
)


def _refunded_status(payment: Payment, refunded: int) -> str:
    if payment.status not in REFUND_DRIVEN_STATUSES:
        return payment.status
    if refunded == 0:
        return Payment.Status.SUCCEEDED
    return (
        Payment.Status.REFUNDED
        if refunded >= payment.amount
        else (Payment.Status.PARTIALLY_REFUNDED)
    )


def _audit(obj, *, field: str, old, new, dry_run: bool) -> dict:
    change = {"target": f"{obj._meta.label_lower}:{obj.pk}", "field": field, "old": old, "new": new}
    if not dry_run:
        audit_record(
            acting_user=None,
            action=ACTION_FIX,
            target=obj,
            reason=f"{field}: {old} -> {new}",
            details=change,
        )
    return change


def fix_inconsistencies(*, dry_run: bool = False) -> dict:
    """Find and (unless dry_run) repair derived columns that disagree with their sources."""
    changes: list[dict] = []
    succeeded_refunds = (
        Refund.objects.filter(payment=OuterRef("pk"), status=Refund.Status.SUCCEEDED)
        .order_by()
        .values("payment")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    with transaction.atomic():
        payments = (
            Payment.objects.select_for_update()
            .annotate(refund_total=Coalesce(Subquery(succeeded_refunds), Value(0)))
            .filter(
                ~Q(amount_refunded=F("refund_total"))
                | (
                    Q(status__in=Payment.CAPTURED_STATUSES)
                    & ~Q(net=F("amount") - F("stripe_fee") - F("platform_fee"))
                )
            )
        )
        for payment in payments:
            refunded = min(payment.refund_total, payment.amount)
            if payment.amount_refunded != refunded:
                changes.append(
                    _audit(
                        payment,
                        field="amount_refunded",
                        old=payment.amount_refunded,
                        new=refunded,
                        dry_run=dry_run,
                    )
                )
                payment.amount_refunded = refunded
                status = _refunded_status(payment, refunded)
                if status != payment.status:
                    changes.append(
                        _audit(
                            payment, field="status", old=payment.status, new=status, dry_run=dry_run
                        )
                    )
                    payment.status = status
            net = payment.amount - payment.stripe_fee - payment.platform_fee
            if payment.is_captured and payment.net != net:
                changes.append(
                    _audit(payment, field="net", old=payment.net, new=net, dry_run=dry_run)
                )
                payment.net = net
            if not dry_run:
                payment._change_reason = "fix_inconsistencies"
                payment.save(update_fields=["amount_refunded", "status", "net", "updated_at"])

        # A correlated subquery, not a join + GROUP BY: FOR UPDATE can't lock grouped rows.
        entries = (
            BalanceEntry.objects.filter(balance=OuterRef("pk"))
            .order_by()
            .values("balance")
            .annotate(total=Sum("minutes"))
            .values("total")
        )
        ledger = (
            StudentBalance.objects.select_for_update()
            .annotate(ledger=Coalesce(Subquery(entries), Value(0)))
            .exclude(minutes=F("ledger"))
        )
        for balance in ledger:
            changes.append(
                _audit(
                    balance,
                    field="minutes",
                    old=balance.minutes,
                    new=balance.ledger,
                    dry_run=dry_run,
                )
            )
            if not dry_run:
                StudentBalance.objects.filter(pk=balance.pk).update(minutes=balance.ledger)
        if dry_run:
            transaction.set_rollback(True)
    return {"dry_run": dry_run, "repairs": len(changes), "changes": changes[:200]}


def cleanup_old_data(*, now=None) -> dict:
    """Delete operational records past their retention (settings.RETENTION_DAYS): webhook
    events that were processed or ignored, finished sync runs, django-q2 task results.
    Money rows, failed webhook events and the audit trail are never deleted here."""
    now = now or timezone.now()
    days = settings.RETENTION_DAYS
    deleted = {}
    with transaction.atomic():
        deleted["webhook_events"] = WebhookEvent.objects.filter(
            status__in=WebhookEvent.DONE_STATUSES,
            received_at__lt=now - timedelta(days=days["webhook_events"]),
        ).delete()[0]
        deleted["sync_runs"] = SyncRun.objects.filter(
            finished_at__lt=now - timedelta(days=days["sync_runs"])
        ).delete()[0]
        deleted["task_results"] = Success.objects.filter(
            stopped__lt=now - timedelta(days=days["task_results"])
        ).delete()[0]
    return {"deleted": deleted, "retention_days": days}
