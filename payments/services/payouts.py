"""Writes for instructor payouts. Who may do what (and the messages for "may not") is decided in
payments/payout_rules.py, which the pages ask too; this module applies those rules whatever
calls it (admin, command, task), under row locks:

- what a payout may take is the instructor's *payable* balance in its currency: the available
  part of the ledger (payments.earnings_selectors), never more than the whole balance (money
  on hold that is already negative, a lost dispute still in its hold, is not paid out first).
  Creating a payout writes its `payout:<pk>` entry (-amount) in the same transaction, so the
  next run or manual payout sees the money as gone;
- payouts are created one transaction at a time (a PostgreSQL advisory lock; SQLite writers
  are serialised anyway), so a run and a manual payout can never both pay the same balance.
  A run skips an instructor who has an open (pending, approved, processing) payout in the
  currency: one payout in flight per instructor and currency;
- a payout leaves through Stripe exactly once (the refunds pattern): it is claimed under its
  row lock with a lease, its idempotency key `payout:<pk>` is committed before the call, a
  resumed attempt first looks for the transfer by its transfer_group `payout:<pk>`, and the
  result is recorded under the lock. Stripe saying no ends the payout FAILED and writes
  `payout:<pk>:returned` (+amount): the money is back in the balance. An unknown outcome
  (timeout, 5xx) leaves it PROCESSING with the claim released, to be looked up next time;
- a canceled payout writes the same `payout:<pk>:returned` entry; entries are written with
  get_or_create on their unique reference, so a replay never applies twice;
- a reversal (money pulled back from the connected account) is landed through
  payments.sync.upsert_transfers, the one place that writes `transfer_reversal:<id>` entries.

Every staff action writes an AdminAction row (backoffice.audit.audit_record) in the
transaction of the change. Lock order: the payout-creation lock, then Instructor, then Payout.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Count, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.models import AdminAction
from backoffice.spreadsheet import neutralise
from payments import gateway, sync
from payments.earnings_selectors import earning_balances
from payments.exceptions import GatewayError, IdempotencyConflict, InvalidRequest
from payments.models import EarningEntry, Instructor, Payout, PayoutRun
from payments.money import MoneyError, format_money, normalize_currency, threshold_minor, to_decimal
from payments.payout_rules import (
    Refusal,
    approve_refusal,
    cancel_refusal,
    create_refusal,
    mark_paid_refusal,
    reverse_refusal,
)

logger = logging.getLogger(__name__)

# --- Messages (staff see them as they are; tests assert the exact words). The permission and
# status messages live in payments/payout_rules.py. ---------------------------------------------
ERR_CURRENCY_NOT_CONFIGURED = (
    "No payout minimum is configured for {currency} (PAYOUT_MINIMUM), so payouts are not made "
    "in it."
)
ERR_AMOUNT_NOT_POSITIVE = "A payout amount must be above zero."
ERR_ABOVE_AVAILABLE = "Only {available} is available to pay out to this instructor in {currency}."
ERR_NOTE_REQUIRED = "Say why this manual payout is made."
ERR_CANCEL_REASON_REQUIRED = "Give a reason for canceling the payout."
ERR_BANK_REFERENCE_REQUIRED = "Enter the bank's reference for the transfer."
ERR_REVERSAL_REASON_REQUIRED = "Give a reason for reversing the transfer."
ERR_REVERSAL_ABOVE_LEFT = "Only {left} of this payout's transfer is left to reverse."
ERR_REVERSAL_REFUSED = "Stripe refused the reversal: {error}"
ERR_REVERSAL_UNKNOWN = (
    "Stripe gave no clear answer about the reversal: it may have been made. The sync and the "
    "transfer.reversed webhook record it if it was; asking again sends the same idempotency "
    "key, so it cannot reverse twice."
)
ERR_REVERSAL_NOT_RECORDED = (
    "The reversal was made in Stripe but could not be read back ({error}); the next Stripe "
    "sync records it."
)
ERR_NO_DESTINATION = "The payout has no connected account to transfer to."

# Audit action names (AdminAction.action).
AUDIT_RUN = "payout_run.create"
AUDIT_CREATE = "payout.create"
AUDIT_APPROVE = "payout.approve"
AUDIT_CANCEL = "payout.cancel"
AUDIT_MARK_PAID = "payout.mark_paid"
AUDIT_PROCESS = "payout.process"
AUDIT_REVERSE = "payout.reverse"

PAYOUT_REFERENCE_PREFIX = "payout:"
# Any fixed 64-bit number: the advisory lock every payout creation takes on PostgreSQL.
PAYOUT_CREATE_LOCK_KEY = zlib.crc32(b"payments.payout_create")

BANK_FILE_HEADER = ["reference", "instructor", "email", "bank_account", "amount", "currency"]


class PayoutError(Exception):
    """A rule said no. The message is safe to show to staff; nothing was changed."""


class PayoutPermissionError(PayoutError):
    """The acting user lacks a permission (the admin turns this into 403)."""


def _raise(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    if refusal.permission:
        raise PayoutPermissionError(refusal.message)
    raise PayoutError(refusal.message)


def _user_or_none(acting_user):
    return acting_user if getattr(acting_user, "pk", None) else None


def _audit(
    *,
    action: str,
    payout: Payout,
    acting_user,
    client: ClientInfo | None = None,
    reason: str = "",
    result: str = AdminAction.Result.SUCCESS,
    details: dict | None = None,
) -> AdminAction:
    return audit_record(
        acting_user=acting_user,
        action=action,
        target=payout,
        amount=payout.amount,
        currency=payout.currency,
        reason=reason,
        result=result,
        details={"instructor_id": payout.instructor_id, **(details or {})},
        client=client,
    )


def payout_reference(payout_id: int) -> str:
    """The payout's entry reference, idempotency key and Stripe transfer_group."""
    return f"{PAYOUT_REFERENCE_PREFIX}{payout_id}"


def payout_returned_reference(payout_id: int) -> str:
    return f"payout:{payout_id}:returned"


def _serialize_payout_creation() -> None:
    """Inside a transaction: wait until no other transaction is creating payouts. On
    PostgreSQL a transaction-scoped advisory lock (released at commit or rollback); SQLite
    runs every write transaction IMMEDIATE, so writers are serialised already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PAYOUT_CREATE_LOCK_KEY])


def _payout_entry(payout: Payout, *, now: datetime) -> EarningEntry:
    """The `payout:<pk>` entry: the money promised out, available at once (it lowers what the
    next payout may take the moment the payout exists)."""
    return EarningEntry(
        instructor_id=payout.instructor_id,
        currency=payout.currency,
        amount=-payout.amount,
        kind=EarningEntry.Kind.PAYOUT,
        reference=payout_reference(payout.pk),
        payout_id=payout.pk,
        occurred_at=now,
        available_at=now,
        description=f"Payout #{payout.pk}",
    )


def _write_returned_entry(payout: Payout, *, description: str) -> EarningEntry:
    """The `payout:<pk>:returned` entry (+amount): the payout failed or was canceled, so its
    money is the instructor's again, at once. Exactly once per payout (unique reference)."""
    now = timezone.now()
    entry, _ = EarningEntry.objects.get_or_create(
        reference=payout_returned_reference(payout.pk),
        defaults={
            "instructor_id": payout.instructor_id,
            "currency": payout.currency,
            "amount": payout.amount,
            "kind": EarningEntry.Kind.PAYOUT_RETURNED,
            "payout_id": payout.pk,
            "occurred_at": now,
            "available_at": now,
            "description": description[:255],
        },
    )
    return entry


def _method_for(stripe_account_id: str) -> str:
    return Payout.Method.CONNECT if stripe_account_id else Payout.Method.BANK


# --- Payout runs ------------------------------------------------------------------------------


@dataclass
class PayoutRunResult:
    """What a run created (or, with dry_run, would create). Money per currency, never added
    across currencies: totals = {"usd": {"count": 12, "amount": 123400}, ...} (minor units)."""

    run_id: int | None
    dry_run: bool
    currencies: list[str]
    payouts_created: int = 0
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    # Instructors left out because they have an open payout in the currency, whatever their
    # balance (per currency).
    skipped_open_payout: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def payout_minimums(currencies: list[str]) -> dict[str, int]:
    """The run's minimum per currency in minor units (at least 1: a payout is never zero)."""
    return {code: max(1, threshold_minor(settings.PAYOUT_MINIMUM, code)) for code in currencies}


def _run_currencies(currency: str | None) -> list[str]:
    configured = sorted(settings.PAYOUT_MINIMUM)
    if not currency:
        return configured
    try:
        code = normalize_currency(currency)
    except MoneyError as exc:
        raise PayoutError(str(exc)) from exc
    if code not in settings.PAYOUT_MINIMUM:
        raise PayoutError(ERR_CURRENCY_NOT_CONFIGURED.format(currency=code.upper()))
    return [code]


def _payable_queryset(*, currencies: list[str], now: datetime) -> QuerySet:
    """Every (instructor, currency) whose payable balance reaches the currency's minimum, as
    one grouped query over the ledger:

        SELECT e.instructor_id, e.currency, i.stripe_account_id,
               LEAST(SUM(e.amount), SUM(e.amount) FILTER (WHERE e.available_at <= now))
                   AS payable
        FROM earningentry e JOIN instructor i ON ...
        WHERE e.currency IN (...)
        GROUP BY 1, 2, 3
        HAVING payable >= CASE e.currency WHEN 'usd' THEN 1000 ... END

    Payable = available, but never more than the whole balance (a negative amount still on
    hold is not paid out first). Values: instructor_id, currency, account, bank account,
    payable."""
    minimums = payout_minimums(currencies)
    minimum = Case(
        *[When(currency=code, then=Value(amount)) for code, amount in minimums.items()],
        output_field=BigIntegerField(),
    )
    return (
        EarningEntry.objects.filter(currency__in=currencies)
        .order_by()
        .values(
            "instructor_id", "currency", "instructor__stripe_account_id", "instructor__bank_account"
        )
        .annotate(
            balance=Sum("amount", default=0),
            available=Sum("amount", filter=Q(available_at__lte=now), default=0),
        )
        .annotate(payable=Least("balance", "available"))
        .filter(payable__gte=minimum)
        .values(
            "instructor_id",
            "currency",
            "instructor__stripe_account_id",
            "instructor__bank_account",
            "payable",
        )
    )


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _payable_sql(*, currencies: list[str], now: datetime):
    """(FROM clause, params): the payable balances without an open payout in the currency,
    as the subquery `c`. The grouped part is the ORM's; the open-payout test runs on its
    result (one probe per instructor and currency, not one per ledger entry)."""
    sql, params = _payable_queryset(currencies=currencies, now=now).query.sql_with_params()
    payout = _quoted(Payout._meta.db_table)
    statuses = sorted(Payout.OPEN_STATUSES)
    return (
        f"({sql}) AS c WHERE NOT EXISTS (SELECT 1 FROM {payout} AS p "
        f"WHERE p.{_quoted('instructor_id')} = c.{_quoted('instructor_id')} "
        f"AND p.{_quoted('currency')} = c.{_quoted('currency')} "
        f"AND p.{_quoted('status')} IN ({', '.join(['%s'] * len(statuses))}))",
        [*params, *statuses],
    )


def _per_currency(*, currencies: list[str], now: datetime) -> dict:
    """{currency: {"count": n, "amount": minor units}}: what a run would pay now, in one
    statement."""
    from_sql, params = _payable_sql(currencies=currencies, now=now)
    currency, payable = _quoted("currency"), _quoted("payable")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.{currency}, COUNT(*), SUM(c.{payable}) FROM {from_sql} "
            f"GROUP BY c.{currency} ORDER BY c.{currency}",
            params,
        )
        return {code: {"count": n, "amount": int(amount)} for code, n, amount in cursor}


def _insert_run_payouts(*, run: PayoutRun, currencies: list[str], now: datetime) -> None:
    """INSERT ... SELECT: one pending payout per payable balance without an open payout, in
    one statement whatever their number. Every column the row needs is listed from the model
    (a field added later gets its default), so this stays the model's insert."""
    from_sql, from_params = _payable_sql(currencies=currencies, now=now)
    account = f"c.{_quoted('instructor__stripe_account_id')}"
    computed = {
        "instructor_id": (f"c.{_quoted('instructor_id')}", []),
        "currency": (f"c.{_quoted('currency')}", []),
        "amount": (f"c.{_quoted('payable')}", []),
        "destination_account": (account, []),
        # Bank payouts keep the account they are approved for (Payout.bank_account).
        "bank_account": (
            f"CASE WHEN {account} <> '' THEN %s ELSE c.{_quoted('instructor__bank_account')} END",
            [""],
        ),
        "method": (
            f"CASE WHEN {account} <> '' THEN %s ELSE %s END",
            [Payout.Method.CONNECT.value, Payout.Method.BANK.value],
        ),
        "run_id": ("%s", [run.pk]),
        "status": ("%s", [Payout.Status.PENDING.value]),
        "source": ("%s", [Payout.Source.RUN.value]),
        "created_at": ("%s", [now]),
        "updated_at": ("%s", [now]),
    }
    columns, expressions, params = [], [], []
    for model_field in Payout._meta.concrete_fields:
        if model_field.primary_key:
            continue
        columns.append(_quoted(model_field.column))
        if model_field.attname in computed:
            expression, values = computed[model_field.attname]
        else:
            value = model_field.get_db_prep_save(model_field.get_default(), connection)
            expression, values = "%s", [value]
        expressions.append(expression)
        params.extend(values)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_quoted(Payout._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(expressions)} FROM {from_sql} "
            f"ORDER BY c.{_quoted('currency')}, c.{_quoted('instructor_id')}",
            [*params, *from_params],
        )


def _insert_run_history(*, run: PayoutRun, now: datetime, acting_user) -> None:
    """The payouts' "+" history rows (django-simple-history), copied from the rows in one
    statement: bulk paths keep the history too."""
    history = Payout.history.model
    tracked = {model_field.attname for model_field in history.tracked_fields}
    special = {
        "history_date": [now],
        "history_change_reason": [f"Payout run #{run.pk}"],
        "history_type": ["+"],
        "history_user_id": [getattr(_user_or_none(acting_user), "pk", None)],
    }
    columns, expressions, params = [], [], []
    for model_field in history._meta.concrete_fields:
        if model_field.attname == "history_id":
            continue
        columns.append(_quoted(model_field.column))
        if model_field.attname in tracked:
            expressions.append(f"p.{_quoted(model_field.column)}")
        else:
            expressions.append("%s")
            params.extend(special[model_field.attname])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_quoted(history._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(expressions)} FROM {_quoted(Payout._meta.db_table)} AS p "
            f"WHERE p.{_quoted('run_id')} = %s",
            [*params, run.pk],
        )


def _insert_run_entries(*, run: PayoutRun, now: datetime) -> None:
    """Each run payout's `payout:<pk>` entry (see _payout_entry, its one-row twin), in one
    statement."""
    entry = EarningEntry._meta
    pk_text = f"CAST(p.{_quoted('id')} AS TEXT)"
    values = {
        "instructor_id": (f"p.{_quoted('instructor_id')}", []),
        "currency": (f"p.{_quoted('currency')}", []),
        "amount": (f"-p.{_quoted('amount')}", []),
        "kind": ("%s", [EarningEntry.Kind.PAYOUT.value]),
        "reference": (f"%s || {pk_text}", [PAYOUT_REFERENCE_PREFIX]),
        "payment_id": ("NULL", []),
        "payout_id": (f"p.{_quoted('id')}", []),
        "adjustment_id": ("NULL", []),
        "occurred_at": ("%s", [now]),
        "available_at": ("%s", [now]),
        "created_at": ("%s", [now]),
        "description": (f"%s || {pk_text}", ["Payout #"]),
    }
    columns, expressions, params = [], [], []
    for model_field in entry.concrete_fields:
        if model_field.primary_key:
            continue
        expression, expression_params = values[model_field.attname]
        columns.append(_quoted(model_field.column))
        expressions.append(expression)
        params.extend(expression_params)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_quoted(entry.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(expressions)} FROM {_quoted(Payout._meta.db_table)} AS p "
            f"WHERE p.{_quoted('run_id')} = %s",
            [*params, run.pk],
        )


def payout_run_create(
    *,
    currency: str | None = None,
    dry_run: bool = False,
    trigger: str = "command",
    acting_user=None,
    now: datetime | None = None,
    client: ClientInfo | None = None,
) -> PayoutRunResult:
    """Create one pending payout per instructor and currency whose payable balance reaches
    PAYOUT_MINIMUM (every configured currency, or `currency`), with its `payout:<pk>` entry
    and history row, in one set-based pass: INSERT ... SELECT statements straight from the
    grouped ledger, so a constant number of queries (and no Python object per payout)
    whatever the instructor count. An instructor with an open payout in the currency is
    skipped. Method: Stripe Connect when the instructor has a connected account, else bank
    transfer. `dry_run` writes nothing and says what would be created. `acting_user` None is
    the system (the command, the schedule); a person needs payments.add_payout. Raises
    PayoutError for a currency with no configured minimum, PayoutPermissionError."""
    if acting_user is not None:
        _raise(create_refusal(user=acting_user))
    currencies = _run_currencies(currency)
    now = now or timezone.now()
    result = PayoutRunResult(run_id=None, dry_run=dry_run, currencies=currencies)
    with transaction.atomic():
        if not dry_run:
            _serialize_payout_creation()
        # Read after the lock: a payout another transaction committed meanwhile is seen.
        result.skipped_open_payout = dict(
            Payout.objects.filter(status__in=Payout.OPEN_STATUSES, currency__in=currencies)
            .order_by("currency")
            .values("currency")
            .annotate(instructors=Count("instructor_id", distinct=True))
            .values_list("currency", "instructors")
        )
        if dry_run:
            result.totals = _per_currency(currencies=currencies, now=now)
            result.payouts_created = sum(t["count"] for t in result.totals.values())
            return result
        run = PayoutRun.objects.create(
            created_by=_user_or_none(acting_user),
            currency=currencies[0] if currency else "",
            trigger=trigger,
        )
        _insert_run_payouts(run=run, currencies=currencies, now=now)
        _insert_run_history(run=run, now=now, acting_user=acting_user)
        _insert_run_entries(run=run, now=now)
        result.totals = {
            row["currency"]: {"count": row["count"], "amount": row["amount"]}
            for row in Payout.objects.filter(run=run)
            .order_by("currency")
            .values("currency")
            .annotate(count=Count("id"), amount=Sum("amount"))
        }
        result.payouts_created = sum(t["count"] for t in result.totals.values())
        run.payouts_created = result.payouts_created
        run.totals = result.totals
        run.save(update_fields=["payouts_created", "totals"])
        audit_record(
            acting_user=acting_user,
            action=AUDIT_RUN,
            target=run,
            details={
                "trigger": trigger,
                "currencies": currencies,
                "payouts_created": result.payouts_created,
                "totals": result.totals,
                "skipped_open_payout": result.skipped_open_payout,
            },
            client=client,
        )
        result.run_id = run.pk
    return result


# --- Manual payouts and decisions -------------------------------------------------------------


def payout_payable_amount(*, instructor_id: int, currency: str, now: datetime | None = None) -> int:
    """What a payout to this instructor in `currency` may take now (minor units, >= 0)."""
    balance = earning_balances(instructor_ids=[instructor_id], currency=currency, now=now).get(
        (instructor_id, currency)
    )
    if balance is None:
        return 0
    return max(0, min(balance.available, balance.balance))


def payout_manual_create(
    *,
    instructor: Instructor,
    amount: int,
    currency: str,
    note: str,
    acting_user,
    client: ClientInfo | None = None,
) -> Payout:
    """Ask for a payout of `amount` minor units outside a run (pending; someone else approves
    it). Not above the payable balance, whatever the minimum. Raises PayoutError (amount,
    currency, note) or PayoutPermissionError."""
    _raise(create_refusal(user=acting_user))
    note = (note or "").strip()
    if not note:
        raise PayoutError(ERR_NOTE_REQUIRED)
    try:
        currency = normalize_currency(currency)
    except MoneyError as exc:
        raise PayoutError(str(exc)) from exc
    if not isinstance(amount, int) or amount <= 0:
        raise PayoutError(ERR_AMOUNT_NOT_POSITIVE)
    with transaction.atomic():
        _serialize_payout_creation()
        locked = Instructor.objects.select_for_update().get(pk=instructor.pk)
        payable = payout_payable_amount(instructor_id=locked.pk, currency=currency)
        if amount > payable:
            raise PayoutError(
                ERR_ABOVE_AVAILABLE.format(
                    available=format_money(payable, currency), currency=currency.upper()
                )
            )
        payout = Payout(
            instructor=locked,
            amount=amount,
            currency=currency,
            status=Payout.Status.PENDING,
            method=_method_for(locked.stripe_account_id),
            source=Payout.Source.MANUAL,
            destination_account=locked.stripe_account_id,
            bank_account="" if locked.stripe_account_id else locked.bank_account,
            note=note,
            requested_by=_user_or_none(acting_user),
        )
        payout._history_user = _user_or_none(acting_user)
        payout.save()
        _payout_entry(payout, now=timezone.now()).save()
        _audit(
            action=AUDIT_CREATE, payout=payout, acting_user=acting_user, client=client, reason=note
        )
    return payout


def _locked(payout_id: int) -> Payout:
    # A real row lock on PostgreSQL; SQLite serialises writers (transaction_mode IMMEDIATE).
    return Payout.objects.select_for_update().get(pk=payout_id)


def payout_approve(
    *, payout: Payout, acting_user, note: str = "", client: ClientInfo | None = None
) -> Payout:
    """Approve a pending payout. A Connect payout gets its idempotency key `payout:<pk>` and
    is queued for processing after commit; a bank transfer waits for the bank file and "mark
    paid". Raises PayoutError (not pending, four-eyes) / PayoutPermissionError (approve,
    senior limit)."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = _locked(payout.pk)
        _raise(approve_refusal(user=acting_user, payout=locked))
        locked.status = Payout.Status.APPROVED
        locked.approved_by = acting_user
        locked.approved_at = timezone.now()
        locked.approval_note = note
        if locked.method == Payout.Method.CONNECT:
            # Derived from our row and committed before any Stripe call (DESIGN decision 3).
            locked.idempotency_key = payout_reference(locked.pk)
        locked._history_user = _user_or_none(acting_user)
        locked.save(
            update_fields=[
                "status",
                "approved_by",
                "approved_at",
                "approval_note",
                "idempotency_key",
                "updated_at",
            ]
        )
        _audit(
            action=AUDIT_APPROVE, payout=locked, acting_user=acting_user, client=client, reason=note
        )
        if locked.method == Payout.Method.CONNECT:
            transaction.on_commit(lambda: _enqueue_processing(locked.pk), robust=True)
    return locked


def _enqueue_processing(payout_id: int) -> None:
    from django_q.tasks import async_task

    async_task("payments.tasks.payout_process_task", payout_id, task_name=f"payout-{payout_id}")


def payout_cancel(
    *, payout: Payout, reason: str, acting_user, client: ClientInfo | None = None
) -> Payout:
    """Cancel a pending or approved payout (a reason is required) and give its amount back to
    the balance (`payout:<pk>:returned`). Raises PayoutError / PayoutPermissionError."""
    reason = (reason or "").strip()
    if not reason:
        raise PayoutError(ERR_CANCEL_REASON_REQUIRED)
    with transaction.atomic():
        locked = _locked(payout.pk)
        _raise(cancel_refusal(user=acting_user, payout=locked))
        locked.status = Payout.Status.CANCELED
        locked.canceled_by = acting_user
        locked.canceled_at = timezone.now()
        locked.cancel_reason = reason
        locked._history_user = _user_or_none(acting_user)
        locked.save(
            update_fields=["status", "canceled_by", "canceled_at", "cancel_reason", "updated_at"]
        )
        _write_returned_entry(locked, description=f"Payout #{locked.pk} canceled")
        _audit(
            action=AUDIT_CANCEL,
            payout=locked,
            acting_user=acting_user,
            client=client,
            reason=reason,
        )
    return locked


def payout_mark_paid(
    *, payout: Payout, bank_reference: str, acting_user, client: ClientInfo | None = None
) -> Payout:
    """Record that an approved bank-transfer payout was paid, with the bank's reference.
    Raises PayoutError / PayoutPermissionError."""
    bank_reference = (bank_reference or "").strip()
    if not bank_reference:
        raise PayoutError(ERR_BANK_REFERENCE_REQUIRED)
    with transaction.atomic():
        locked = _locked(payout.pk)
        _raise(mark_paid_refusal(user=acting_user, payout=locked))
        locked.status = Payout.Status.PAID
        locked.bank_reference = bank_reference[:255]
        locked.paid_by = acting_user
        locked.paid_at = timezone.now()
        locked._history_user = _user_or_none(acting_user)
        locked.save(update_fields=["status", "bank_reference", "paid_by", "paid_at", "updated_at"])
        _audit(
            action=AUDIT_MARK_PAID,
            payout=locked,
            acting_user=acting_user,
            client=client,
            details={"bank_reference": locked.bank_reference},
        )
    return locked


# --- Processing (Stripe Connect transfers) ----------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.PAYOUT_PROCESSING_LEASE_SECONDS)


def _claim(payout_id: int) -> Payout | None:
    """Under the payout's row lock: APPROVED -> PROCESSING, or take over a PROCESSING payout
    whose claim was released (an unknown outcome) or whose worker died (lease expired); the
    claim is committed before any Stripe call. None when there is nothing to do or another
    worker holds a live claim."""
    with transaction.atomic():
        locked = _locked(payout_id)
        now = timezone.now()
        if locked.method != Payout.Method.CONNECT:
            return None
        if locked.status == Payout.Status.PROCESSING:
            started = locked.processing_started_at
            if started is not None and started > now - _lease():
                return None  # another worker is on it
        elif locked.status != Payout.Status.APPROVED:
            return None
        locked.status = Payout.Status.PROCESSING
        locked.processing_started_at = now
        locked.attempts += 1
        locked.idempotency_key = locked.idempotency_key or payout_reference(locked.pk)
        locked.save(
            update_fields=[
                "status",
                "processing_started_at",
                "attempts",
                "idempotency_key",
                "updated_at",
            ]
        )
    return locked


def _find_existing_transfer(payout: Payout):
    """The transfer Stripe already made for this payout in an earlier attempt, if any: found
    by the transfer_group (and metadata) every payout transfer carries."""
    for transfer in gateway.stripe_transfer_list(transfer_group=payout_reference(payout.pk)):
        if str((transfer.metadata or {}).get("payout_id", payout.pk)) == str(payout.pk):
            return transfer
    return None


def payout_process(*, payout_id: int) -> Payout:
    """Send an approved Connect payout to the instructor's connected account, exactly once.
    Safe to call any number of times, concurrently, and after a crash: only the worker that
    claims the payout calls Stripe, always with the key `payout:<pk>`, and a resumed attempt
    first looks for the transfer by its transfer_group. Stripe refusing (no such account, no
    transfers capability, ...) ends it FAILED with its amount back in the balance. Returns the
    payout as it stands afterwards."""
    claimed = _claim(payout_id)
    if claimed is None:
        return Payout.objects.get(pk=payout_id)
    if not claimed.destination_account:
        return _record_failure(claimed.pk, code="no_destination", message=ERR_NO_DESTINATION)
    try:
        transfer = None
        if claimed.attempts > 1:
            # An earlier attempt may have reached Stripe before dying: never transfer twice.
            transfer = _find_existing_transfer(claimed)
        if transfer is None:
            transfer = gateway.stripe_transfer_create(
                amount=claimed.amount,
                currency=claimed.currency,
                destination=claimed.destination_account,
                transfer_group=payout_reference(claimed.pk),
                metadata={
                    "payout_id": str(claimed.pk),
                    "instructor_id": str(claimed.instructor_id),
                },
                description=f"Payout #{claimed.pk}",
                idempotency_key=claimed.idempotency_key,
            )
    except IdempotencyConflict as exc:
        # Our key was used with other parameters: a transfer may exist. Never guess; resume by
        # looking it up.
        _release_claim(claimed.pk, message=str(exc))
        logger.error("payout %s: idempotency conflict: %s", claimed.pk, exc)
        return Payout.objects.get(pk=claimed.pk)
    except InvalidRequest as exc:
        # Stripe answered and said no: nothing was transferred, the money is the instructor's.
        return _record_failure(claimed.pk, code=exc.stripe_code or "", message=str(exc))
    except GatewayError as exc:
        # Outcome unknown (timeout, connection, rate limit, 5xx): Stripe may have transferred.
        # Stay PROCESSING and release the claim; the next run looks the transfer up first.
        _release_claim(claimed.pk, message=str(exc))
        logger.warning("payout %s: gateway error, will resume: %s", claimed.pk, exc)
        return Payout.objects.get(pk=claimed.pk)
    return _record_success(claimed.pk, transfer=transfer)


def _release_claim(payout_id: int, *, message: str) -> None:
    Payout.objects.filter(pk=payout_id, status=Payout.Status.PROCESSING).update(
        processing_started_at=None, failure_message=message[:2000], updated_at=timezone.now()
    )


def _record_failure(payout_id: int, *, code: str, message: str) -> Payout:
    with transaction.atomic():
        locked = _locked(payout_id)
        if locked.status != Payout.Status.PROCESSING:
            return locked
        locked.status = Payout.Status.FAILED
        locked.failed_at = timezone.now()
        locked.failure_code = (code or "")[:64]
        locked.failure_message = message
        locked.processing_started_at = None
        locked.save(
            update_fields=[
                "status",
                "failed_at",
                "failure_code",
                "failure_message",
                "processing_started_at",
                "updated_at",
            ]
        )
        _write_returned_entry(locked, description=f"Payout #{locked.pk} failed")
        _audit(
            action=AUDIT_PROCESS,
            payout=locked,
            acting_user=None,
            reason=message,
            result=AdminAction.Result.FAILURE,
            details={"failure_code": locked.failure_code},
        )
    logger.warning("payout %s failed: %s", payout_id, message)
    return locked


def _record_success(payout_id: int, *, transfer) -> Payout:
    """One transaction: the payout paid with its transfer id, the Transfer mirror (the same
    upsert the sync and webhooks use, so whoever lands first, the rows are the same), the
    audit row."""
    with transaction.atomic():
        locked = _locked(payout_id)
        if locked.status == Payout.Status.PAID:
            return locked  # a concurrent resumer recorded it already
        if locked.status != Payout.Status.PROCESSING:
            logger.error(
                "payout %s: Stripe transfer %s arrived while the payout is %s",
                locked.pk,
                transfer.id,
                locked.status,
            )
            return locked
        locked.status = Payout.Status.PAID
        locked.stripe_transfer_id = transfer.id
        locked.paid_at = timezone.now()
        locked.processing_started_at = None
        locked.failure_code = ""
        locked.failure_message = ""
        locked.save(
            update_fields=[
                "status",
                "stripe_transfer_id",
                "paid_at",
                "processing_started_at",
                "failure_code",
                "failure_message",
                "updated_at",
            ]
        )
        sync.upsert_transfers([transfer])
        _audit(
            action=AUDIT_PROCESS,
            payout=locked,
            acting_user=None,
            details={"stripe_transfer_id": transfer.id, "attempts": locked.attempts},
        )
    return locked


def payouts_process_approved(*, limit: int = 500) -> dict:
    """Process approved Connect payouts and resume PROCESSING ones whose claim was released
    (unknown outcome) or whose worker died. For `manage_payments --process-payouts`, its
    schedule, and the safety net behind each approval's own task. Counts per outcome, plus
    `unknown_outcome`: payouts left PROCESSING with a released claim after this pass."""
    now = timezone.now()
    ids = list(
        Payout.objects.filter(method=Payout.Method.CONNECT)
        .filter(
            Q(status=Payout.Status.APPROVED)
            | Q(status=Payout.Status.PROCESSING, processing_started_at__isnull=True)
            | Q(status=Payout.Status.PROCESSING, processing_started_at__lte=now - _lease())
        )
        .order_by("approved_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {"candidates": len(ids), "paid": 0, "failed": 0, "still_processing": 0}
    outcomes = {Payout.Status.PAID: "paid", Payout.Status.FAILED: "failed"}
    for pk in ids:
        result = payout_process(payout_id=pk)
        counts[outcomes.get(result.status, "still_processing")] += 1
    waiting = Payout.objects.filter(
        status=Payout.Status.PROCESSING, processing_started_at__isnull=True
    )
    last = waiting.order_by("-updated_at", "-id").values_list("failure_message", flat=True).first()
    counts["unknown_outcome"] = waiting.count()
    counts["gateway_error"] = last or ""
    return counts


# --- Reversals --------------------------------------------------------------------------------


def payout_reverse(
    *,
    payout: Payout,
    amount: int,
    reason: str,
    acting_user,
    client: ClientInfo | None = None,
) -> Payout:
    """Pull back `amount` minor units of a paid Connect payout from the connected account (a
    Stripe transfer reversal). The reversal lands through payments.sync.upsert_transfers,
    which writes its `transfer_reversal:<id>` entry (+amount to the balance: the money is
    owed to the instructor again until a decision says otherwise). Raises PayoutError (amount
    above what is left, Stripe refused, unknown outcome) / PayoutPermissionError."""
    reason = (reason or "").strip()
    if not reason:
        raise PayoutError(ERR_REVERSAL_REASON_REQUIRED)
    if not isinstance(amount, int) or amount <= 0:
        raise PayoutError(ERR_AMOUNT_NOT_POSITIVE)
    with transaction.atomic():
        locked = _locked(payout.pk)
        _raise(reverse_refusal(user=acting_user, payout=locked))
        left = locked.amount - locked.amount_reversed
        if amount > left:
            raise PayoutError(
                ERR_REVERSAL_ABOVE_LEFT.format(left=format_money(left, locked.currency))
            )
        # Derived from what is reversed already: a double submit (or the gateway's own retry)
        # sends the same key with the same amount, and Stripe answers the first reversal.
        key = f"{payout_reference(locked.pk)}:reversal:{locked.amount_reversed}"
        transfer_id = locked.stripe_transfer_id

    def audit_failure(**details) -> None:
        # The attempt is on record whatever Stripe did: a refusal, or an outcome we do not
        # know (Stripe may have reversed; the transfer.reversed webhook or the sync lands it).
        with transaction.atomic():
            _audit(
                action=AUDIT_REVERSE,
                payout=locked,
                acting_user=acting_user,
                client=client,
                reason=reason,
                result=AdminAction.Result.FAILURE,
                details={"amount": amount, "idempotency_key": key, **details},
            )

    try:
        reversal = gateway.stripe_transfer_reversal_create(
            transfer_id=transfer_id,
            amount=amount,
            metadata={"payout_id": str(locked.pk), "reason": reason[:500]},
            idempotency_key=key,
        )
    except IdempotencyConflict as exc:  # before InvalidRequest, its base: outcome unknown
        audit_failure(outcome="unknown", error=str(exc))
        raise PayoutError(ERR_REVERSAL_UNKNOWN) from exc
    except InvalidRequest as exc:
        audit_failure(error=str(exc))
        raise PayoutError(ERR_REVERSAL_REFUSED.format(error=exc)) from exc
    except GatewayError as exc:
        audit_failure(outcome="unknown", error=str(exc))
        raise PayoutError(ERR_REVERSAL_UNKNOWN) from exc
    try:
        transfer = gateway.stripe_transfer_retrieve(transfer_id=transfer_id)
    except GatewayError as exc:
        logger.error("payout %s: reversal %s not read back: %s", locked.pk, reversal.id, exc)
        audit_failure(outcome="made, not recorded", stripe_reversal_id=reversal.id, error=str(exc))
        raise PayoutError(ERR_REVERSAL_NOT_RECORDED.format(error=exc)) from exc
    with transaction.atomic():
        locked = _locked(payout.pk)
        # Mirrors the reversal, writes its transfer_reversal:<id> entry once and keeps the
        # payout's amount_reversed equal to Stripe's (whoever lands it first: this, the
        # transfer.reversed webhook or the sync).
        sync.upsert_transfers([transfer])
        locked.refresh_from_db()
        _audit(
            action=AUDIT_REVERSE,
            payout=locked,
            acting_user=acting_user,
            client=client,
            reason=reason,
            details={
                "amount": amount,
                "stripe_transfer_id": transfer_id,
                "stripe_reversal_id": reversal.id,
            },
        )
    return locked


# --- The bank-transfer file -------------------------------------------------------------------


def payout_bank_file_rows(payouts: QuerySet[Payout]) -> Iterator[list[str]]:
    """The file staff send the bank: the header, then one row per APPROVED bank-transfer
    payout of `payouts` (others are left out: a Connect payout goes through Stripe, and a
    pending one is not approved yet). Columns: reference `payout:<pk>` (what staff find the
    transfer by when they mark it paid), instructor, e-mail, bank account, amount in major
    units ("1234.50"; "1500" for yen), currency (upper-case ISO code). Streams: one query,
    flat memory."""
    yield list(BANK_FILE_HEADER)
    rows = (
        payouts.filter(method=Payout.Method.BANK, status=Payout.Status.APPROVED)
        .select_related("instructor")
        .order_by("pk")
        .iterator(chunk_size=2000)
    )
    for payout in rows:
        instructor = payout.instructor
        yield [
            payout_reference(payout.pk),
            neutralise(instructor.name),
            neutralise(instructor.email),
            neutralise(payout.bank_account),
            str(to_decimal(payout.amount, payout.currency)),
            payout.currency.upper(),
        ]
