"""Daily rollups: a handful of GROUP BY queries per run, never a Python loop over payments.

`generate_analytics(start=..., end=...)` recomputes every (day, currency) in the inclusive
range and writes only what changed, so a re-run over unchanged data writes nothing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connections, transaction
from django.db.models import Case, Count, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce, NullIf, TruncDate
from django.utils import timezone

from payments.models import Dispute, Payment, Refund
from refunds.models import RefundRequest

from .models import DailyRollup

ERR_RANGE_REVERSED = "The start date {start} is after the end date {end}."
ERR_RANGE_TOO_LONG = "At most {days} days per run; split the range."
MAX_RANGE_DAYS = 3660
UNKNOWN_REASON = "unknown"
CENT = Decimal("0.01")

# Counts and minor-unit amounts: a period's figure is the sum of its days' figures.
ADDITIVE_FIELDS = [
    "attempted_count",
    "succeeded_count",
    "failed_count",
    "canceled_count",
    "refunded_count",
    "refunded_amount",
    "gross_amount",
    "stripe_fee_amount",
    "platform_fee_amount",
    "net_amount",
    "disputes_opened",
]
# Everything a rollup row holds: the additive figures, then those derived per day (rates,
# averages, breakdowns, medians), which are recomputed from sums rather than added up.
METRIC_FIELDS = [
    *ADDITIVE_FIELDS,
    "average_amount",
    "success_rate",
    "conversion_rate",
    "payment_methods",
    "failure_reasons",
    "refund_requests_processed",
    "median_refund_hours",
]


def percent(part: int, whole: int) -> Decimal | None:
    """part / whole as a percentage with two places, rounded half up; None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)


def average_minor(total: int, count: int) -> int | None:
    """total / count in minor units, rounded half up (integers only, no floats)."""
    if not count:
        return None
    return (2 * total + count) // (2 * count)


def median_hours(durations_seconds: list[float]) -> Decimal | None:
    if not durations_seconds:
        return None
    hours = Decimal(str(statistics.median(durations_seconds))) / 3600
    return hours.quantize(CENT, rounding=ROUND_HALF_UP)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the site's time zone, as aware datetimes."""
    tz = timezone.get_default_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz),
    )


def _day(expression: str) -> TruncDate:
    return TruncDate(expression, tzinfo=timezone.get_default_timezone())


@dataclass
class _Figures:
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
    payment_methods: dict = field(default_factory=dict)
    failure_reasons: dict = field(default_factory=dict)
    disputes_opened: int = 0
    refund_durations: list = field(default_factory=list)

    def as_row(self) -> dict:
        decided = self.succeeded_count + self.failed_count
        return {
            "attempted_count": self.attempted_count,
            "succeeded_count": self.succeeded_count,
            "failed_count": self.failed_count,
            "canceled_count": self.canceled_count,
            "refunded_count": self.refunded_count,
            "refunded_amount": self.refunded_amount,
            "gross_amount": self.gross_amount,
            "stripe_fee_amount": self.stripe_fee_amount,
            "platform_fee_amount": self.platform_fee_amount,
            "net_amount": self.net_amount,
            "average_amount": average_minor(self.gross_amount, self.succeeded_count),
            "success_rate": percent(self.succeeded_count, decided),
            "conversion_rate": percent(self.succeeded_count, self.attempted_count),
            "payment_methods": dict(sorted(self.payment_methods.items())),
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "disputes_opened": self.disputes_opened,
            "refund_requests_processed": len(self.refund_durations),
            "median_refund_hours": median_hours(self.refund_durations),
        }


def _raw_rows(queryset):
    """The queryset's rows straight from the cursor, skipping the ORM's per-value converters
    (thousands of groups at a year's range): days as dates, sums as ints."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        for day, *rest in cursor.fetchall():
            if isinstance(day, str):  # SQLite returns dates as text
                day = date.fromisoformat(day)
            yield (day, *(int(v) if isinstance(v, Decimal) else v for v in rest))


def compute_figures(start: date, end: date) -> dict[tuple[date, str], dict]:
    """{(day, currency): row values} for every day/currency with any activity in the range."""
    lo, hi = day_bounds(start, end)
    figures: dict[tuple[date, str], _Figures] = defaultdict(_Figures)
    captured = Q(status__in=Payment.CAPTURED_STATUSES)
    payments = Payment.objects.filter(created__gte=lo, created__lt=hi).order_by()

    # 1. One scan of the range: counts and sums per day, currency, method and, for failed
    # payments only, the failure reason (decline code, else failure code). Grouping by the
    # reason costs a few extra groups; a second query over the failed rows would cost a
    # second pass (random heap reads through the status index at a million rows).
    reason = Case(
        When(
            status=Payment.Status.FAILED,
            then=Coalesce(
                NullIf("decline_code", Value("")),
                NullIf("failure_code", Value("")),
                Value(UNKNOWN_REASON),
            ),
        ),
        default=Value(""),
    )
    groups = (
        payments.annotate(day=_day("created"), reason=reason)
        .values_list("day", "currency", "payment_method_type", "reason")
        .annotate(
            attempted=Count("id"),
            succeeded=Count("id", filter=captured),
            failed=Count("id", filter=Q(status=Payment.Status.FAILED)),
            canceled=Count("id", filter=Q(status=Payment.Status.CANCELED)),
            gross=Sum("amount", filter=captured, default=0),
            stripe_fee=Sum("stripe_fee", filter=captured, default=0),
            platform_fee=Sum("platform_fee", filter=captured, default=0),
            net=Sum("net", filter=captured, default=0),
        )
        # Day first: PostgreSQL then sorts on the date and rarely reaches the text columns'
        # collation; grouped currency-first the same query took twice as long.
        .order_by("day", "currency", "payment_method_type", "reason")
    )
    for day, currency, method, why, n, ok, bad, cancel, gross, s_fee, p_fee, net in _raw_rows(
        groups
    ):
        row = figures[(day, currency)]
        row.attempted_count += n
        row.succeeded_count += ok
        row.failed_count += bad
        row.canceled_count += cancel
        row.gross_amount += gross
        row.stripe_fee_amount += s_fee
        row.platform_fee_amount += p_fee
        row.net_amount += net
        per_method = row.payment_methods.setdefault(
            method, {"attempted": 0, "succeeded": 0, "amount": 0}
        )
        per_method["attempted"] += n
        per_method["succeeded"] += ok
        per_method["amount"] += gross
        if why:
            row.failure_reasons[why] = row.failure_reasons.get(why, 0) + bad

    # 3. Refunds as Stripe reports them, by the day of the refund.
    refunds = (
        Refund.objects.filter(status=Refund.Status.SUCCEEDED, created__gte=lo, created__lt=hi)
        .order_by()
        .annotate(day=_day("created"))
        .values_list("day", "currency")
        .annotate(n=Count("id"), total=Sum("amount", default=0))
    )
    for day, currency, n, total in refunds:
        row = figures[(day, currency)]
        row.refunded_count, row.refunded_amount = n, total

    # 4. Disputes by the day they were opened.
    disputes = (
        Dispute.objects.filter(created__gte=lo, created__lt=hi)
        .order_by()
        .annotate(day=_day("created"))
        .values_list("day", "currency")
        .annotate(n=Count("id"))
    )
    for day, currency, n in disputes:
        figures[(day, currency)].disputes_opened = n

    # 5. Refund processing time (request created -> processed), by the day it was processed.
    # One row per processed request in the range: refunds are a small fraction of payments.
    durations = (
        RefundRequest.objects.filter(
            status=RefundRequest.Status.PROCESSED, processed_at__gte=lo, processed_at__lt=hi
        )
        .order_by()
        .annotate(day=_day("processed_at"))
        .values_list("day", "currency", F("processed_at"), F("created_at"))
    )
    for day, currency, processed_at, created in durations.iterator(chunk_size=2000):
        seconds = max(0.0, (processed_at - created).total_seconds())
        figures[(day, currency)].refund_durations.append(seconds)

    return {key: value.as_row() for key, value in figures.items()}


@dataclass(frozen=True)
class RollupResult:
    start: date
    end: date
    created: int
    updated: int
    unchanged: int
    deleted: int

    def as_dict(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }


def generate_analytics(*, start: date, end: date) -> RollupResult:
    """Recompute the rollups of every day in [start, end] (inclusive) and upsert them.

    Writes only rows whose figures changed; removes rows for days/currencies that no longer
    have any activity. Safe to run concurrently with itself (upsert on the unique key).
    """
    if start > end:
        raise ValueError(ERR_RANGE_REVERSED.format(start=start, end=end))
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ValueError(ERR_RANGE_TOO_LONG.format(days=MAX_RANGE_DAYS))
    computed = compute_figures(start, end)
    existing = {
        (row["day"], row["currency"]): row
        for row in DailyRollup.objects.filter(day__gte=start, day__lte=end).values(
            "pk", "day", "currency", *METRIC_FIELDS
        )
    }
    now = timezone.now()
    to_write, unchanged = [], 0
    for (day, currency), values in computed.items():
        old = existing.get((day, currency))
        if old is not None and all(old[k] == v for k, v in values.items()):
            unchanged += 1
            continue
        to_write.append(DailyRollup(day=day, currency=currency, computed_at=now, **values))
    stale = [row["pk"] for key, row in existing.items() if key not in computed]
    created = sum(1 for row in to_write if (row.day, row.currency) not in existing)
    with transaction.atomic():
        if to_write:
            DailyRollup.objects.bulk_create(
                to_write,
                batch_size=500,
                update_conflicts=True,
                unique_fields=["day", "currency"],
                update_fields=[*METRIC_FIELDS, "computed_at"],
            )
        if stale:
            DailyRollup.objects.filter(pk__in=stale).delete()
    return RollupResult(
        start=start,
        end=end,
        created=created,
        updated=len(to_write) - created,
        unchanged=unchanged,
        deleted=len(stale),
    )


def local_today() -> date:
    return timezone.localdate()
