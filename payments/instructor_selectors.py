"""Reads for the instructor screens: balances for a page of instructors, and one instructor's
recent ledger entries and payouts. Balances come from payments.earnings_selectors (sums of
EarningEntry, never stored)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, Q

from .earnings_selectors import EarningBalance, earning_balances
from .models import EarningEntry, Instructor, Payout

# Rows shown on an instructor's page; the full lists are one link away.
RECENT_ENTRIES = 20
RECENT_PAYOUTS = 10


def balances_by_instructor(
    instructor_ids: Iterable[int],
) -> dict[int, list[EarningBalance]]:
    """{instructor id: [balance per currency, sorted by currency]} for these instructors, in
    one grouped query (earning_balances); an instructor with no entries maps to []."""
    ids = list(instructor_ids)
    result: dict[int, list[EarningBalance]] = {pk: [] for pk in ids}
    if not ids:
        return result
    for (instructor_id, _), balance in sorted(earning_balances(instructor_ids=ids).items()):
        result[instructor_id].append(balance)
    return result


@dataclass(frozen=True)
class InstructorEarnings:
    balances: list[EarningBalance]
    entries: list[EarningEntry]
    payouts: list[Payout]
    entry_count_shown: int
    open_payouts: int


def instructor_earnings(*, instructor: Instructor) -> InstructorEarnings:
    """What an instructor's page shows: balances per currency, the latest entries (newest
    first, with their payment and payout) and the latest payouts. Four queries."""
    balances = balances_by_instructor([instructor.pk])[instructor.pk]
    entries = list(
        EarningEntry.objects.filter(instructor=instructor)
        .select_related("payment", "payout")
        .order_by("-occurred_at", "-id")[:RECENT_ENTRIES]
    )
    payouts = list(
        Payout.objects.filter(instructor=instructor).order_by("-created_at", "-id")[:RECENT_PAYOUTS]
    )
    open_payouts = Payout.objects.filter(
        instructor=instructor, status__in=Payout.OPEN_STATUSES
    ).count()
    return InstructorEarnings(
        balances=balances,
        entries=entries,
        payouts=payouts,
        entry_count_shown=len(entries),
        open_payouts=open_payouts,
    )


@dataclass(frozen=True)
class OwedTotal:
    """Across instructors, in one currency (minor units): what the marketplace owes them
    (the sum of positive balances) and what some owe back (negative balances, clawbacks
    after a payout), never netted against each other."""

    currency: str
    owed: int
    owed_back: int
    instructors_owed: int


def owed_by_currency() -> list[OwedTotal]:
    """OwedTotal per currency, sorted by currency: one query, the balances grouped per
    (instructor, currency) in a subquery and summed by sign per currency."""
    table = EarningEntry._meta.db_table
    sql = f"""
        SELECT currency,
               SUM(CASE WHEN balance > 0 THEN balance ELSE 0 END),
               SUM(CASE WHEN balance < 0 THEN -balance ELSE 0 END),
               SUM(CASE WHEN balance > 0 THEN 1 ELSE 0 END)
        FROM (SELECT instructor_id, currency, SUM(amount) AS balance
              FROM {table} GROUP BY instructor_id, currency) AS balances
        GROUP BY currency ORDER BY currency
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    return [
        OwedTotal(
            currency=currency,
            owed=int(owed or 0),
            owed_back=int(owed_back or 0),
            instructors_owed=int(count or 0),
        )
        for currency, owed, owed_back, count in rows
    ]


def payout_queue_counts(*, failed_since: datetime) -> dict[str, int]:
    """{"pending": payouts waiting for approval, "failed": payouts that failed since
    `failed_since`}; one query on the (status, created_at) index."""
    return Payout.objects.filter(
        status__in=[Payout.Status.PENDING, Payout.Status.FAILED]
    ).aggregate(
        pending=Count("id", filter=Q(status=Payout.Status.PENDING)),
        failed=Count("id", filter=Q(status=Payout.Status.FAILED, failed_at__gte=failed_since)),
    )
