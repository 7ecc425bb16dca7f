"""Reads for refunds: the priority-ranked queue, the refundable amount, counts for badges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from payments.models import Payment, Refund
from payments.money import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    decimal_places,
)

from .models import RefundRequest


class Priority:
    """Queue priority of a pending request. Values are what the filter and badges use; RANK is
    the sort key (lower first). Requests that are not pending have no priority (rank 4)."""

    URGENT = "urgent"
    HIGH = "high"
    LARGE = "large"
    NORMAL = "normal"
    CHOICES = [(URGENT, "Urgent"), (HIGH, "High"), (LARGE, "Large"), (NORMAL, "Normal")]
    RANK = {URGENT: 0, HIGH: 1, LARGE: 2, NORMAL: 3}
    NONE_RANK = 4


def _minor_threshold(major: str | Decimal, places: int) -> int:
    """A major-unit amount in minor units for a currency with `places` decimals (50.00 ->
    5000, 50, 50000). Truncates, so a threshold never becomes larger than configured."""
    return int(Decimal(str(major)).scaleb(places))


def amount_above_q(major: str | Decimal) -> Q:
    """amount > `major` in each row's own currency, as one SQL condition (no join):
    amount > CASE currency WHEN zero-decimal THEN 50 WHEN three-decimal THEN 50000 ELSE 5000."""
    threshold = Case(
        When(currency__in=sorted(ZERO_DECIMAL_CURRENCIES), then=Value(_minor_threshold(major, 0))),
        When(currency__in=sorted(THREE_DECIMAL_CURRENCIES), then=Value(_minor_threshold(major, 3))),
        default=Value(_minor_threshold(major, 2)),
        output_field=BigIntegerField(),
    )
    return Q(amount__gt=threshold)


def is_above_major(*, amount: int, currency: str, major: str | Decimal) -> bool:
    """The Python twin of amount_above_q for one amount."""
    return amount > _minor_threshold(major, decimal_places(currency))


@dataclass(frozen=True)
class PriorityCutoffs:
    urgent_before: datetime  # created before this -> URGENT
    high_before: datetime  # created before this (and not urgent) -> HIGH


def priority_cutoffs(now: datetime | None = None) -> PriorityCutoffs:
    now = now or timezone.now()
    return PriorityCutoffs(
        urgent_before=now - timedelta(days=settings.REFUND_URGENT_AFTER_DAYS),
        high_before=now - timedelta(days=settings.REFUND_HIGH_AFTER_DAYS),
    )


def priority_q(priority: str, *, now: datetime | None = None) -> Q:
    """The WHERE condition for one priority, written on plain columns so that the
    (status, created_at) index serves it; the same tiers as refund_request_queue's CASE."""
    cut = priority_cutoffs(now)
    pending = Q(status=RefundRequest.Status.PENDING)
    urgent = Q(created_at__lt=cut.urgent_before)
    high = Q(created_at__lt=cut.high_before) & ~urgent
    young = Q(created_at__gte=cut.high_before)
    large = amount_above_q(settings.REFUND_LARGE_AMOUNT)
    return {
        Priority.URGENT: pending & urgent,
        Priority.HIGH: pending & high,
        Priority.LARGE: pending & young & large,
        Priority.NORMAL: pending & young & ~large,
    }[priority]


def refund_request_queue(
    *, queryset: QuerySet[RefundRequest] | None = None, now: datetime | None = None
) -> QuerySet[RefundRequest]:
    """Requests annotated with `priority` (urgent/high/large/normal, "" when not pending) and
    `priority_rank` (0..4), both SQL CASE expressions so the database sorts, filters and
    paginates. Ordered by rank, then oldest first."""
    queryset = RefundRequest.objects.all() if queryset is None else queryset
    cut = priority_cutoffs(now)
    pending = Q(status=RefundRequest.Status.PENDING)
    large = amount_above_q(settings.REFUND_LARGE_AMOUNT)
    tiers = [
        (pending & Q(created_at__lt=cut.urgent_before), Priority.URGENT),
        (pending & Q(created_at__lt=cut.high_before), Priority.HIGH),
        (pending & large, Priority.LARGE),
        (pending, Priority.NORMAL),
    ]
    return queryset.annotate(
        priority=Case(
            *[When(condition, then=Value(value)) for condition, value in tiers],
            default=Value(""),
            output_field=CharField(),
        ),
        priority_rank=Case(
            *[When(condition, then=Value(Priority.RANK[value])) for condition, value in tiers],
            default=Value(Priority.NONE_RANK),
            output_field=IntegerField(),
        ),
    ).order_by("priority_rank", "created_at", "id")


def refund_request_pending_count() -> int:
    """Pending requests (the sidebar badge). One indexed COUNT over the status index."""
    return RefundRequest.objects.filter(status=RefundRequest.Status.PENDING).count()


# Payments in these statuses can never be refunded through a request.
BLOCKED_PAYMENT_STATUSES = frozenset(
    {Payment.Status.FAILED, Payment.Status.CANCELED, Payment.Status.DISPUTED}
)


# Mirror refund statuses that hold money: Stripe accepted them (pending ones may still fail,
# and then stop counting when the sync or a webhook updates the mirror).
COUNTED_REFUND_STATUSES = (
    Refund.Status.SUCCEEDED,
    Refund.Status.PENDING,
    Refund.Status.REQUIRES_ACTION,
)


def payment_processed_amount(*, payment: Payment) -> int:
    """Minor units Stripe has refunded (or is refunding) on `payment`: the payment's
    amount_refunded, or the sum of its mirrored refunds where that is larger (a pending
    refund is not in amount_refunded yet, but its money is gone)."""
    mirrored = (
        Refund.objects.filter(payment=payment, status__in=COUNTED_REFUND_STATUSES)
        .order_by()
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return max(payment.amount_refunded, mirrored)


@dataclass(frozen=True)
class Refundability:
    currency: str
    captured: int  # minor units
    processed: int  # refunds Stripe already made (payment.amount_refunded)
    in_flight: int  # approved or processing requests, not yet refunded
    pending: int  # requested, not yet decided (informative; not reserved)
    refundable: int  # captured - processed - in_flight, never below 0
    blocked_reason: str  # "" when refunds are allowed at all


def payment_refundability(
    *, payment: Payment, exclude_request_id: int | None = None
) -> Refundability:
    """What can still be refunded on `payment`, in its minor units. Callers that are about to
    move money hold a row lock on the payment (select_for_update) while they call this, so
    the figure cannot change under them."""
    from .services import payment_blocked_reason  # the messages live with the rules

    requests = RefundRequest.objects.filter(payment=payment).order_by()
    if exclude_request_id is not None:
        requests = requests.exclude(pk=exclude_request_id)
    sums = requests.aggregate(
        in_flight=Sum("amount", filter=Q(status__in=RefundRequest.IN_FLIGHT_STATUSES)),
        pending=Sum("amount", filter=Q(status=RefundRequest.Status.PENDING)),
    )
    captured = payment.amount if payment.is_captured else 0
    in_flight = sums["in_flight"] or 0
    processed = payment_processed_amount(payment=payment)
    return Refundability(
        currency=payment.currency,
        captured=captured,
        processed=processed,
        in_flight=in_flight,
        pending=sums["pending"] or 0,
        refundable=max(0, captured - processed - in_flight),
        blocked_reason=payment_blocked_reason(payment),
    )
