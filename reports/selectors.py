"""Reads over the rollups: totals per currency, chart series, report payloads.

Totals are always per currency; amounts of different currencies are never added.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from payments.models import Payment
from payments.money import format_money, is_known_currency, to_decimal

from .models import DailyRollup
from .rollups import ADDITIVE_FIELDS, UNKNOWN_REASON, average_minor, percent

PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 30}
ERR_UNKNOWN_PERIOD = "Unknown period {period!r}: choose daily, weekly or monthly."


@dataclass
class CurrencyTotals:
    """Summed rollups of one currency (minor units) and the rates derived from the sums."""

    currency: str
    attempted_count: int = 0
    succeeded_count: int = 0
    failed_count: int = 0
    canceled_count: int = 0
    refunded_count: int = 0
    refunded_amount: int = 0
    gross_amount: int = 0
    stripe_fee_amount: int = 0
    platform_fee_amount: int = 0
    net_amount: int = 0
    disputes_opened: int = 0

    @property
    def success_rate(self) -> Decimal | None:
        return percent(self.succeeded_count, self.succeeded_count + self.failed_count)

    @property
    def conversion_rate(self) -> Decimal | None:
        return percent(self.succeeded_count, self.attempted_count)

    @property
    def average_amount(self) -> int | None:
        return average_minor(self.gross_amount, self.succeeded_count)

    def money(self, amount: int | None) -> str:
        return format_money(amount, self.currency)

    @property
    def currency_known(self) -> bool:
        """False for a bad stored row's currency: its amounts read raw, the row is flagged."""
        return is_known_currency(self.currency)

    # Display strings for templates (they cannot call money()).
    @property
    def gross_display(self) -> str:
        return self.money(self.gross_amount)

    @property
    def stripe_fee_display(self) -> str:
        return self.money(self.stripe_fee_amount)

    @property
    def platform_fee_display(self) -> str:
        return self.money(self.platform_fee_amount)

    @property
    def net_display(self) -> str:
        return self.money(self.net_amount)

    @property
    def refunded_display(self) -> str:
        return self.money(self.refunded_amount)

    @property
    def average_display(self) -> str:
        return self.money(self.average_amount)


def rollup_totals(*, queryset: QuerySet[DailyRollup]) -> list[CurrencyTotals]:
    """One GROUP BY currency over the (filtered) rollups; sorted by currency."""
    rows = (
        queryset.order_by()
        .values("currency")
        .annotate(**{name: Sum(name) for name in ADDITIVE_FIELDS})
        .order_by("currency")
    )
    return [CurrencyTotals(**row) for row in rows]


def rollup_chart_series(*, queryset: QuerySet[DailyRollup], max_days: int = 120) -> dict:
    """Chart.js data for revenue (one line per currency, major units) and success rate per
    day (all currencies' counts pooled: counts, unlike money, may be added)."""
    rows = list(
        queryset.order_by("-day").values_list(
            "day", "currency", "gross_amount", "succeeded_count", "failed_count"
        )[: max_days * 8]
    )
    return chart_series_from_rows(rows, max_days=max_days)


def chart_series_from_rows(rows, *, max_days: int = 120) -> dict:
    """rows: (day, currency, gross_amount, succeeded_count, failed_count) tuples."""
    days = sorted({row[0] for row in rows})[-max_days:]
    index = {day: i for i, day in enumerate(days)}
    revenue: dict[str, list] = defaultdict(lambda: [0] * len(days))
    ok, bad = [0] * len(days), [0] * len(days)
    for day, currency, gross, succeeded, failed in rows:
        if day not in index:
            continue
        i = index[day]
        if is_known_currency(currency):
            # A currency we do not know (a bad row) has no known minor unit to draw in: it
            # stays off the revenue chart; the tables show it raw, flagged.
            revenue[currency][i] = float(to_decimal(gross, currency))
        ok[i] += succeeded
        bad[i] += failed
    labels = [day.strftime("%b %d") for day in days]
    return {
        "labels": labels,
        "revenue": {currency: revenue[currency] for currency in sorted(revenue)},
        "success_rate": [
            float(rate) if (rate := percent(o, o + b)) is not None else None
            for o, b in zip(ok, bad, strict=True)
        ],
    }


def period_range(*, period: str, end: date | None = None) -> tuple[date, date]:
    """The inclusive [start, end] of a report: 1, 7 or 30 days ending on `end` (default:
    yesterday, the last complete day)."""
    if period not in PERIOD_DAYS:
        raise ValueError(ERR_UNKNOWN_PERIOD.format(period=period))
    end = end or timezone.localdate() - timedelta(days=1)
    return end - timedelta(days=PERIOD_DAYS[period] - 1), end


def _shares(counts: dict[str, int]) -> dict[str, float]:
    """{key: count} -> {key: % of the total} with two places, largest first."""
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {key: float(percent(n, total)) for key, n in ordered if total}


def _currency_payload(totals: CurrencyTotals, methods: dict, reasons: dict) -> dict:
    rate = totals.success_rate
    return {
        "currency": totals.currency,
        "total_transactions": totals.attempted_count,
        "succeeded_transactions": totals.succeeded_count,
        "failed_transactions": totals.failed_count,
        "canceled_transactions": totals.canceled_count,
        "success_rate": float(rate) if rate is not None else None,
        "total_revenue": totals.gross_amount,
        "total_revenue_display": totals.money(totals.gross_amount),
        "avg_transaction_amount": totals.average_amount,
        "avg_transaction_amount_display": totals.money(totals.average_amount),
        "payment_method_breakdown": _shares(methods),
        "failure_reasons": _shares(reasons),
        "refunds": {
            "count": totals.refunded_count,
            "amount": totals.refunded_amount,
            "amount_display": totals.money(totals.refunded_amount),
        },
        "fees": {
            "stripe": totals.stripe_fee_amount,
            "platform": totals.platform_fee_amount,
            "stripe_display": totals.money(totals.stripe_fee_amount),
            "platform_display": totals.money(totals.platform_fee_amount),
        },
        "net": totals.net_amount,
        "net_display": totals.money(totals.net_amount),
        "disputes_opened": totals.disputes_opened,
        "amounts_in": "minor units of the currency",
    }


def payment_report(*, period: str, end: date | None = None) -> dict:
    """The report `manage_payments --payment-report` writes, computed from the rollups only.
    Breakdown values are percentages (of transactions for methods, of failures for reasons)."""
    start, end = period_range(period=period, end=end)
    rows = DailyRollup.objects.filter(day__gte=start, day__lte=end).order_by("currency", "day")
    totals: dict[str, CurrencyTotals] = {}
    methods: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict[str, list] = defaultdict(list)
    for row in rows:
        entry = totals.setdefault(row.currency, CurrencyTotals(currency=row.currency))
        for name in ADDITIVE_FIELDS:
            setattr(entry, name, getattr(entry, name) + getattr(row, name))
        for method, figures in row.payment_methods.items():
            methods[row.currency][method] += figures["attempted"]
        for reason, n in row.failure_reasons.items():
            reasons[row.currency][reason] += n
        daily[row.currency].append(
            {
                "day": row.day.isoformat(),
                "total_transactions": row.attempted_count,
                "total_revenue": row.gross_amount,
                "success_rate": float(row.success_rate) if row.success_rate is not None else None,
            }
        )
    return {
        "period": period,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "currencies": {
            code: {
                **_currency_payload(entry, methods[code], reasons[code]),
                "daily": daily[code],
            }
            for code, entry in sorted(totals.items())
        },
    }


def payments_summary(*, queryset: QuerySet[Payment]) -> dict:
    """The report's per-currency figures for an arbitrary set of payments (the "JSON report"
    admin action): two aggregate queries, whatever the size of the selection. Refunds here are
    what was refunded of these payments (amount_refunded), not refunds by day."""
    captured = Q(status__in=Payment.CAPTURED_STATUSES)
    queryset = queryset.order_by()
    per_method = queryset.values_list("currency", "payment_method_type").annotate(
        attempted=Count("id"),
        succeeded=Count("id", filter=captured),
        failed=Count("id", filter=Q(status=Payment.Status.FAILED)),
        canceled=Count("id", filter=Q(status=Payment.Status.CANCELED)),
        refunded=Count("id", filter=Q(amount_refunded__gt=0)),
        refunded_amount=Sum("amount_refunded", default=0),
        gross=Sum("amount", filter=captured, default=0),
        stripe_fee=Sum("stripe_fee", filter=captured, default=0),
        platform_fee=Sum("platform_fee", filter=captured, default=0),
        net=Sum("net", filter=captured, default=0),
    )
    totals: dict[str, CurrencyTotals] = {}
    methods: dict[str, dict[str, int]] = defaultdict(dict)
    for currency, method, n, ok, bad, cancel, ref_n, ref_amt, gross, sf, pf, net in per_method:
        entry = totals.setdefault(currency, CurrencyTotals(currency=currency))
        entry.attempted_count += n
        entry.succeeded_count += ok
        entry.failed_count += bad
        entry.canceled_count += cancel
        entry.refunded_count += ref_n
        entry.refunded_amount += ref_amt
        entry.gross_amount += gross
        entry.stripe_fee_amount += sf
        entry.platform_fee_amount += pf
        entry.net_amount += net
        methods[currency][method] = n
    reasons: dict[str, dict[str, int]] = defaultdict(dict)
    failed = (
        queryset.filter(status=Payment.Status.FAILED)
        .annotate(
            reason=Coalesce(
                NullIf("decline_code", Value("")),
                NullIf("failure_code", Value("")),
                Value(UNKNOWN_REASON),
            )
        )
        .values_list("currency", "reason")
        .annotate(n=Count("id"))
    )
    for currency, reason, n in failed:
        reasons[currency][reason] = n
    return {
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "payments": sum(entry.attempted_count for entry in totals.values()),
        "currencies": {
            code: _currency_payload(entry, methods[code], reasons[code])
            for code, entry in sorted(totals.items())
        },
    }
