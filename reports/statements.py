"""An instructor's monthly statement: what they were owed at the start of a month, every entry
of their earnings ledger in that month grouped by what it was, and what they are owed at its
end. One instructor, one currency, one calendar month of the site time zone.

The figures are the ledger's own entries (payments.models.EarningEntry) and nothing else:

    closing balance = opening balance + the sum of the month's entries

holds by construction, and the tests check it against a second computation (the sum of every
entry dated before the month's end, which is also payments.earnings_selectors'
`earning_balances` once the month is over). Next month's opening is this month's closing.

An entry belongs to the month of its `occurred_at` (when the effect happened: the payment's
success, the refund's creation, the payout's creation), the date the instructor recognises.
Entries are append-only, so a month's statement changes only if an entry dated in it is
recorded later (a refund mirrored late, a correction found by `--fix-inconsistencies`):
the statement shows when it was generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from payments.models import EarningEntry, Instructor
from payments.money import format_money

Kind = EarningEntry.Kind

# What the statement groups, in the order it shows them; every entry kind is in exactly one
# group (tests/reports/test_statements.py checks that a new kind is not forgotten).
SECTIONS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("earnings", "Earnings", frozenset({Kind.EARNING})),
    ("refunds", "Refunds", frozenset({Kind.REFUND})),
    ("disputes", "Disputes", frozenset({Kind.DISPUTE_LOST, Kind.DISPUTE_WON})),
    ("corrections", "Corrections", frozenset({Kind.CORRECTION})),
    (
        "payouts",
        "Payouts",
        frozenset({Kind.PAYOUT, Kind.PAYOUT_RETURNED, Kind.PAYOUT_REVERSED}),
    ),
    ("adjustments", "Adjustments", frozenset({Kind.ADJUSTMENT})),
)
# A stored kind that no section names (a bad row) still counts: shown under this heading, so
# the statement adds up whatever the table holds.
OTHER_SECTION = ("other", "Other entries")

MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
ERR_BAD_MONTH = "Not a month: {value!r} (use YYYY-MM)."


@dataclass(frozen=True)
class StatementLine:
    """One ledger entry as the statement shows it (amount in signed minor units)."""

    entry_id: int
    occurred_at: datetime
    available_at: datetime
    kind: str
    kind_label: str
    reference: str
    description: str
    amount: int
    payment_intent_id: str = ""
    payment_amount: int | None = None
    payout_id: int | None = None
    adjustment_id: int | None = None


@dataclass
class StatementSection:
    key: str
    title: str
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass
class Statement:
    """One instructor's month in one currency. Money in signed minor units of `currency`."""

    instructor: Instructor
    currency: str
    month: date  # the first day of the month
    start: datetime  # the month's first instant in the site time zone (inclusive)
    end: datetime  # the next month's first instant (exclusive)
    # The instant the closing figures describe: the month's end, or now while it runs.
    as_of: datetime
    generated_at: datetime
    opening_balance: int
    sections: list[StatementSection]
    # Of the closing balance, what was still inside the hold period at `as_of`.
    closing_on_hold: int

    @property
    def movements(self) -> int:
        return sum(section.total for section in self.sections)

    @property
    def closing_balance(self) -> int:
        return self.opening_balance + self.movements

    @property
    def closing_available(self) -> int:
        return self.closing_balance - self.closing_on_hold

    @property
    def is_complete(self) -> bool:
        """False while the month is still running (the statement is "to date")."""
        return self.as_of >= self.end

    @property
    def entry_count(self) -> int:
        return sum(len(section.lines) for section in self.sections)

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()

    def money(self, amount: int | None) -> str:
        return format_money(amount, self.currency)


def site_zone() -> ZoneInfo:
    return timezone.get_default_timezone()


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant, next month's first instant) of `month` in the site time zone."""
    zone = site_zone()
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime(first.year, first.month, 1, tzinfo=zone),
        datetime(following.year, following.month, 1, tzinfo=zone),
    )


def parse_month(value: str) -> date:
    """'2026-11' -> date(2026, 11, 1). Raises ValueError (message ERR_BAD_MONTH) otherwise."""
    match = MONTH_RE.match((value or "").strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise ValueError(ERR_BAD_MONTH.format(value=value))
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_label(month: date) -> str:
    return month.strftime("%B %Y")


def current_month(now: datetime | None = None) -> date:
    return timezone.localtime(now or timezone.now(), site_zone()).date().replace(day=1)


def _section_for(kind: str) -> tuple[str, str]:
    for key, title, kinds in SECTIONS:
        if kind in kinds:
            return key, title
    return OTHER_SECTION


def instructor_statement(
    *,
    instructor: Instructor,
    currency: str,
    month: date,
    now: datetime | None = None,
) -> Statement:
    """The statement of `instructor` in `currency` for `month` (any day of it) in two
    queries: the opening balance with what is on hold at the close, then the month's entries
    with their payment. Empty sections are left out."""
    now = now or timezone.now()
    currency = currency.lower()
    month = month.replace(day=1)
    start, end = month_bounds(month)
    as_of = min(end, now)
    entries = EarningEntry.objects.filter(instructor=instructor, currency=currency)
    figures = entries.aggregate(
        opening=Sum("amount", filter=Q(occurred_at__lt=start), default=0),
        on_hold=Sum("amount", filter=Q(occurred_at__lt=end, available_at__gt=as_of), default=0),
    )
    sections: dict[str, StatementSection] = {}
    rows = (
        entries.filter(occurred_at__gte=start, occurred_at__lt=end)
        .select_related("payment")
        .only(
            "id",
            "occurred_at",
            "available_at",
            "kind",
            "reference",
            "description",
            "amount",
            "payout_id",
            "adjustment_id",
            "payment__stripe_payment_intent_id",
            "payment__amount",
            "payment__description",
            "payment__product_name",
        )
        .order_by("occurred_at", "id")
    )
    kind_labels = dict(Kind.choices)
    for entry in rows.iterator(chunk_size=2000):
        payment = entry.payment
        # A payment's entries say what was sold (the instructor knows their courses, not our
        # ids); the others (payouts, adjustments) say what the ledger wrote.
        description = (
            (payment.product_name or payment.description or entry.description)
            if payment
            else entry.description
        )
        line = StatementLine(
            entry_id=entry.pk,
            occurred_at=entry.occurred_at,
            available_at=entry.available_at,
            kind=entry.kind,
            kind_label=kind_labels.get(entry.kind, entry.kind),
            reference=entry.reference,
            description=description,
            amount=entry.amount,
            payment_intent_id=payment.stripe_payment_intent_id if payment else "",
            payment_amount=payment.amount if payment else None,
            payout_id=entry.payout_id,
            adjustment_id=entry.adjustment_id,
        )
        key, title = _section_for(entry.kind)
        sections.setdefault(key, StatementSection(key=key, title=title)).lines.append(line)
    order = [key for key, _, _ in SECTIONS] + [OTHER_SECTION[0]]
    return Statement(
        instructor=instructor,
        currency=currency,
        month=month,
        start=start,
        end=end,
        as_of=as_of,
        generated_at=now,
        opening_balance=figures["opening"],
        sections=[sections[key] for key in order if key in sections],
        closing_on_hold=figures["on_hold"],
    )


@dataclass(frozen=True)
class StatementPeriod:
    """The currencies an instructor has entries in, each with its first and last month."""

    currency: str
    first_month: date
    last_month: date


def statement_periods(*, instructor: Instructor) -> list[StatementPeriod]:
    """One grouped query: per currency, the months from the first entry to the last."""
    rows = (
        EarningEntry.objects.filter(instructor=instructor)
        .order_by()
        .values("currency")
        .annotate(first=Min("occurred_at"), last=Max("occurred_at"))
        .order_by("currency")
    )
    zone = site_zone()
    return [
        StatementPeriod(
            currency=row["currency"],
            first_month=timezone.localtime(row["first"], zone).date().replace(day=1),
            last_month=timezone.localtime(row["last"], zone).date().replace(day=1),
        )
        for row in rows
    ]


def months_between(first: date, last: date) -> list[date]:
    """Every month from `last` back to `first` (newest first), both included."""
    months = []
    year, month = last.year, last.month
    while (year, month) >= (first.year, first.month):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months
