"""Reads of the instructors' earnings ledger (payments.models.EarningEntry).

A balance is never stored: it is the sum of an instructor's entries in one currency, split by
`available_at` into what may be paid out now and what is still on hold. Every screen, the
payout run, the statement and `--fix-inconsistencies` read balances through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, Sum
from django.utils import timezone

from .models import EarningEntry


@dataclass(frozen=True)
class EarningBalance:
    """One instructor's money in one currency (signed minor units):
    balance = available + on_hold. `available` may be negative (a clawback after a payout,
    carried forward and netted from the next payouts)."""

    instructor_id: int
    currency: str
    balance: int
    available: int
    on_hold: int


def earning_balances(
    *,
    instructor_ids: Iterable[int] | None = None,
    currency: str | None = None,
    now: datetime | None = None,
) -> dict[tuple[int, str], EarningBalance]:
    """Balances per (instructor id, currency) in one grouped query, for these instructors (all
    when None) and this currency (all when None). Pairs with no entries are absent."""
    now = now or timezone.now()
    entries = EarningEntry.objects.all()
    if instructor_ids is not None:
        entries = entries.filter(instructor_id__in=list(instructor_ids))
    if currency:
        entries = entries.filter(currency=currency)
    rows = (
        entries.order_by()
        .values("instructor_id", "currency")
        .annotate(
            balance=Sum("amount", default=0),
            available=Sum("amount", filter=Q(available_at__lte=now), default=0),
        )
    )
    return {
        (row["instructor_id"], row["currency"]): EarningBalance(
            instructor_id=row["instructor_id"],
            currency=row["currency"],
            balance=row["balance"],
            available=row["available"],
            on_hold=row["balance"] - row["available"],
        )
        for row in rows
    }
