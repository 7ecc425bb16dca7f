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
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Success

from backoffice.audit import audit_record
from payments import ledger
from payments.models import BalanceEntry, Payment, StudentBalance, SyncRun, WebhookEvent
from payments.sync import refresh_payments

ACTION_FIX = "fix_inconsistency"
CHUNK = 2000
MAX_EXAMPLES = 20


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


def _payments_off_ledger(pks: list[int]) -> set[int]:
    """Which of these payments hold ledger columns that the ledger's rules would not give
    them. Read without locks: a candidate is locked and re-derived before it is changed."""
    facts = ledger.payment_facts(pks)
    candidates = set()
    for payment in Payment.objects.filter(pk__in=pks).order_by():
        values = ledger.payment_rederive(payment, facts.get(payment.pk, ledger.PaymentFacts()))
        if any(getattr(payment, name) != value for name, value in values.items()):
            candidates.add(payment.pk)
    return candidates


def fix_inconsistencies(*, dry_run: bool = False) -> dict:
    """Find and (unless dry_run) repair derived columns that disagree with their sources:
    each payment's ledger columns (status, refunded amount, fees, net: payments/ledger.py,
    the same rules as the sync), hour balances against their entries. Reports the payments
    whose metadata misses fields of the contract (only the checkout can fill those)."""
    changes: list[dict] = []
    all_pks = list(Payment.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(all_pks), CHUNK):
        candidates = _payments_off_ledger(all_pks[start : start + CHUNK])
        if not candidates:
            continue
        with transaction.atomic():
            for change in refresh_payments(candidates, reason="fix_inconsistencies"):
                for field, old in change.old.items():
                    new = getattr(change.payment, field)
                    if old != new:
                        changes.append(
                            _audit(change.payment, field=field, old=old, new=new, dry_run=dry_run)
                        )
            if dry_run:
                transaction.set_rollback(True)

    with transaction.atomic():
        # A correlated subquery, not a join + GROUP BY: FOR UPDATE can't lock grouped rows.
        entries = (
            BalanceEntry.objects.filter(balance=OuterRef("pk"))
            .order_by()
            .values("balance")
            .annotate(total=Sum("minutes"))
            .values("total")
        )
        off_ledger = (
            StudentBalance.objects.select_for_update()
            .annotate(ledger=Coalesce(Subquery(entries), Value(0)))
            .exclude(minutes=F("ledger"))
        )
        for balance in off_ledger:
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
    gaps = Payment.objects.exclude(metadata_problems=[]).order_by("-created")
    return {
        "dry_run": dry_run,
        "repairs": len(changes),
        "changes": changes[:200],
        "metadata_gaps": gaps.count(),
        "metadata_gap_examples": [
            {"payment": pi, "problems": problems}
            for pi, problems in gaps.values_list("stripe_payment_intent_id", "metadata_problems")[
                :MAX_EXAMPLES
            ]
        ],
    }


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
