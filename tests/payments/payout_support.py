"""Rows for the payout screens' tests: ledger entries and payouts as the services leave them
(a payout with its `payout:<pk>` entry), written directly so a screen test sets up exactly
the state it looks at."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from payments.models import EarningEntry, Payout, PayoutRun

_refs = itertools.count(1)


def entry(
    instructor,
    amount: int,
    currency: str = "usd",
    *,
    kind: str = EarningEntry.Kind.EARNING,
    on_hold: bool = False,
    payout: Payout | None = None,
    payment=None,
    reference: str | None = None,
    occurred_days_ago: int = 10,
) -> EarningEntry:
    """One entry; available now unless `on_hold` (available in three days)."""
    now = timezone.now()
    occurred = now - timedelta(days=occurred_days_ago)
    return EarningEntry.objects.create(
        instructor=instructor,
        currency=currency,
        amount=amount,
        kind=kind,
        reference=reference or f"test:{next(_refs)}",
        payout=payout,
        payment=payment,
        occurred_at=occurred,
        available_at=now + timedelta(days=3) if on_hold else occurred,
    )


def payout(
    instructor,
    amount: int,
    currency: str = "usd",
    *,
    status: str = Payout.Status.PENDING,
    method: str | None = None,
    source: str = Payout.Source.RUN,
    run: PayoutRun | None = None,
    requested_by=None,
    **fields,
) -> Payout:
    """A payout and its `payout:<pk>` entry (what payout creation writes in one transaction),
    plus `payout:<pk>:returned` when it failed or was canceled; the method follows the
    instructor's connected account unless given."""
    if method is None:
        method = Payout.Method.CONNECT if instructor.stripe_account_id else Payout.Method.BANK
    row = Payout.objects.create(
        instructor=instructor,
        amount=amount,
        currency=currency,
        status=status,
        method=method,
        source=source,
        run=run,
        requested_by=requested_by,
        destination_account=instructor.stripe_account_id,
        bank_account=fields.pop(
            "bank_account", "" if method == Payout.Method.CONNECT else instructor.bank_account
        ),
        **fields,
    )
    entry(
        instructor,
        -amount,
        currency,
        kind=EarningEntry.Kind.PAYOUT,
        payout=row,
        reference=f"payout:{row.pk}",
        occurred_days_ago=0,
    )
    if status in (Payout.Status.FAILED, Payout.Status.CANCELED):
        entry(
            instructor,
            amount,
            currency,
            kind=EarningEntry.Kind.PAYOUT_RETURNED,
            payout=row,
            reference=f"payout:{row.pk}:returned",
            occurred_days_ago=0,
        )
    return row
