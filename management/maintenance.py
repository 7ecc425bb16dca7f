"""Repairs and retention: `manage_payments --fix-inconsistencies` and `--cleanup-old-data`.

Repairs only ever derive a column from the rows it summarises (a payment's refunded amount
from its succeeded refunds, net from amount and fees, a balance from its ledger); they never
invent money. Each repaired row gets an AdminAction in the same transaction, so the audit
trail says what was changed and from what.

The instructors' earnings ledger is append-only: its check (fix_earnings) writes the entries
a payment is missing, and a correction for what they still do not explain, never an edit.

Mirrored rows that the boundary checks (payments/validation.py) would refuse today, stored
before them or around them (an unknown currency, a negative amount, a refund or dispute above
or beside its payment, an id of the wrong kind, a status we have no label for), are reported,
not changed: what they should hold is Stripe's to say. Staff replay the object's webhook event
or re-run the sync once Stripe's side is right; the pages show such rows flagged meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_q.models import Success

from backoffice.api.idempotency import idempotency_records_cleanup
from backoffice.api.throttling import throttle_windows_cleanup
from backoffice.audit import audit_record
from payments import earnings, ledger
from payments.models import (
    BalanceEntry,
    Dispute,
    Payment,
    Refund,
    StudentBalance,
    SyncRun,
    WebhookEvent,
)
from payments.models.base import MinorUnitsField
from payments.money import SUPPORTED_CURRENCIES, format_money
from payments.sync import refresh_payments
from payments.validation import ID_PREFIXES

ACTION_FIX = "fix_inconsistency"
ACTION_FIX_EARNINGS = "fix_inconsistency.earnings"
CHUNK = 2000
MAX_EXAMPLES = 20


def _shown(obj, field: str, value) -> str:
    """A value for the audit row's reason, which staff read on the audit trail: a money
    column through the money formatter ("$25.00"), anything else as it is. `details` keeps
    the raw values (minor units) for machines."""
    if isinstance(obj._meta.get_field(field), MinorUnitsField) and isinstance(value, int):
        return format_money(value, getattr(obj, "currency", ""))
    return str(value)


def _audit(obj, *, field: str, old, new, dry_run: bool) -> dict:
    change = {"target": f"{obj._meta.label_lower}:{obj.pk}", "field": field, "old": old, "new": new}
    if not dry_run:
        audit_record(
            acting_user=None,
            action=ACTION_FIX,
            target=obj,
            reason=f"{field}: {_shown(obj, field, old)} -> {_shown(obj, field, new)}",
            details=change,
        )
    return change


# What is wrong with a reported row; `value` is the offending column's value.
ROW_UNKNOWN_CURRENCY = "currency {value!r} is not one we know"
ROW_NEGATIVE_AMOUNT = "amount {value} is negative"
ROW_ABOVE_PAYMENT = "amount {value} is above its payment's amount"
ROW_OTHER_CURRENCY = "currency {value!r} is not its payment's"
ROW_BAD_ID = "id {value!r} is not a {kind} id"
ROW_UNKNOWN_STATUS = "status {value!r} has no label here (counted as open by the ledger)"


def _not_prefixed(field: str, kind: str) -> Q:
    matches = Q()
    for prefix in ID_PREFIXES[kind]:
        matches |= Q(**{f"{field}__startswith": prefix})
    return ~matches


def _bad_row_checks() -> list[tuple]:
    """(model, Stripe id column, condition, message, column shown, kind of id) per check;
    each is one scan, whatever the number of rows."""
    currencies = sorted(SUPPORTED_CURRENCIES)
    pi = "stripe_payment_intent_id"
    checks: list[tuple] = [
        (Payment, pi, ~Q(currency__in=currencies), ROW_UNKNOWN_CURRENCY, "currency", ""),
        (Payment, pi, _not_prefixed(pi, "payment_intent"), ROW_BAD_ID, pi, "payment intent"),
    ]
    for model, kind in ((Refund, "refund"), (Dispute, "dispute")):
        checks += [
            (model, "stripe_id", _not_prefixed("stripe_id", kind), ROW_BAD_ID, "stripe_id", kind),
            (model, "stripe_id", ~Q(currency__in=currencies), ROW_UNKNOWN_CURRENCY, "currency", ""),
            (model, "stripe_id", Q(amount__lt=0), ROW_NEGATIVE_AMOUNT, "amount", ""),
            (
                model,
                "stripe_id",
                Q(amount__gt=F("payment__amount")),
                ROW_ABOVE_PAYMENT,
                "amount",
                "",
            ),
            (
                model,
                "stripe_id",
                ~Q(currency=F("payment__currency")),
                ROW_OTHER_CURRENCY,
                "currency",
                "",
            ),
            (
                model,
                "stripe_id",
                ~Q(status__in=model.Status.values),
                ROW_UNKNOWN_STATUS,
                "status",
                "",
            ),
        ]
    return checks


def _admin_page(opts, pk: int, payment_pk: int) -> str:
    """The row's own admin page, or its payment's (refunds show there, in a table)."""
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    except NoReverseMatch:
        return reverse("admin:payments_payment_change", args=[payment_pk])


def bad_rows_report() -> dict:
    """Mirrored rows the boundary checks would refuse now (see the module docstring): the
    number of findings (a row with two problems counts twice), and up to MAX_EXAMPLES of
    them with what is wrong and the admin page where staff find the row."""
    count, examples = 0, []
    for model, id_field, condition, message, shown, kind in _bad_row_checks():
        opts = model._meta
        rows = model.objects.filter(condition).order_by("pk")
        count += rows.count()
        parent = "pk" if model is Payment else "payment_id"
        for pk, stripe_id, value, payment_pk in rows.values_list("pk", id_field, shown, parent)[
            :MAX_EXAMPLES
        ]:
            if len(examples) >= MAX_EXAMPLES:
                break
            examples.append(
                {
                    "row": f"{opts.label_lower}:{pk}",
                    "stripe_id": stripe_id,
                    "problem": message.format(value=value, kind=kind),
                    "admin": _admin_page(opts, pk, payment_pk),
                }
            )
    return {"bad_row_findings": count, "bad_row_examples": examples}


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
    whose metadata misses fields of the contract (only the checkout can fill those), and
    the mirrored rows the boundary checks would refuse (bad_rows_report: reported, never
    changed). Then the instructors' earnings against the repaired payments (fix_earnings,
    reported under "earnings", apart from `repairs`)."""
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
            # Customer order, as payments/hours.py's writers lock balances: no deadlock.
            .order_by("customer_id")
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
    earnings_report = fix_earnings(dry_run=dry_run)
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
        **bad_rows_report(),
        "earnings": earnings_report,
    }


EARNINGS_REASON = "earnings of {payment}: entries made {entries}, the payment's net is {net}"


def fix_earnings(*, dry_run: bool = False) -> dict:
    """Check the instructors' ledger against the payments (payments/earnings.py: a captured
    payment's entries sum to its net, all its instructor's; any other payment's to zero) and,
    unless dry_run, write what is missing: the effects without an entry, then a correction
    for the rest. Entries are never edited or deleted. Payments stored before the ledger
    existed get their whole history here (the backfill). One AdminAction per repaired
    payment, in the transaction that writes its entries."""
    off: list[dict] = []
    written = 0
    all_pks = list(Payment.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(all_pks), CHUNK):
        gaps = earnings.earnings_gaps(all_pks[start : start + CHUNK])
        if not gaps:
            continue
        with transaction.atomic():
            entries = earnings.record_payment_entries([gap.payment_id for gap in gaps])
            by_payment: dict[int, list] = {}
            for entry in entries:
                by_payment.setdefault(entry.payment_id, []).append(entry)
            for gap in gaps:
                made = sum(gap.entries.values())
                wrote = [
                    {"reference": e.reference, "instructor_id": e.instructor_id, "amount": e.amount}
                    for e in by_payment.get(gap.payment_id, [])
                ]
                finding = {
                    "payment": gap.payment_intent_id,
                    "instructor_id": gap.instructor_id,
                    # Every instructor whose balance this payment's entries get wrong.
                    "instructors": sorted((set(gap.entries) | {gap.instructor_id}) - {None}),
                    "currency": gap.currency,
                    "net": gap.net,
                    "entries": made,
                    "written": wrote,
                }
                off.append(finding)
                if not dry_run and wrote:
                    audit_record(
                        acting_user=None,
                        action=ACTION_FIX_EARNINGS,
                        target=Payment,
                        target_id=str(gap.payment_id),
                        target_repr=gap.payment_intent_id,
                        amount=gap.net - made,
                        currency=gap.currency,
                        reason=EARNINGS_REASON.format(
                            payment=gap.payment_intent_id,
                            entries=format_money(made, gap.currency),
                            net=format_money(gap.net, gap.currency),
                        ),
                        details={"field": "earnings", **finding},
                    )
            written += len(entries)
            if dry_run:
                transaction.set_rollback(True)
    return {
        "payments_off": len(off),
        "entries_written": 0 if dry_run else written,
        "entries_missing": written,
        "instructors": sorted({who for f in off for who in f["instructors"]}),
        "examples": off[:MAX_EXAMPLES],
    }


def cleanup_old_data(*, now=None) -> dict:
    """Delete operational records past their retention (settings.RETENTION_DAYS): webhook
    events that were processed or ignored, finished sync runs, django-q2 task results, and
    the API's Idempotency-Key records past API_IDEMPOTENCY_TTL_HOURS. Money rows, failed
    webhook events and the audit trail are never deleted here."""
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
        deleted["idempotency_records"] = idempotency_records_cleanup(now=now)
        deleted["api_throttle_windows"] = throttle_windows_cleanup(now=now)
    return {"deleted": deleted, "retention_days": days}
