"""Reads for refunds: the priority-ranked queue, the refundable amount, counts for badges."""

from __future__ import annotations

from collections.abc import Mapping
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

from payments import ledger
from payments.models import Payment
from payments.money import threshold_minor

from . import rules
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


def amount_above_q(thresholds: Mapping[str, str | Decimal]) -> Q:
    """amount > the threshold of each row's own currency, as one SQL condition (no join), one
    WHEN per configured currency and 0 for any other (the strictest rule, as
    payments.money.threshold_minor): with {"usd": "50", "jpy": "7500"}
    amount > CASE currency WHEN 'jpy' THEN 7500 WHEN 'usd' THEN 5000 ELSE 0 END.
    Its Python twin is refunds.rules.amount_above; the two agree row for row."""
    threshold = Case(
        *[
            When(currency=currency, then=Value(threshold_minor(thresholds, currency)))
            for currency in sorted(thresholds)
        ],
        default=Value(0),
        output_field=BigIntegerField(),
    )
    return Q(amount__gt=threshold)


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
    """Pending requests (dashboard, job summaries). One indexed COUNT over the status index."""
    return RefundRequest.objects.filter(status=RefundRequest.Status.PENDING).count()


def refund_request_pending_count_upto(limit: int) -> int:
    """Pending requests, counted no further than `limit` (COUNT over a LIMITed subquery): the
    sidebar badge is on every admin page, and a full count of 100k pending requests was its
    slowest query (22 ms); a badge needs "999+", not the exact figure."""
    return (
        RefundRequest.objects.filter(status=RefundRequest.Status.PENDING).order_by()[:limit].count()
    )


def payment_processed_amount(*, payment: Payment) -> int:
    """Minor units Stripe has refunded or is refunding on `payment`: the ledger's committed
    refund amount (a refund Stripe reports as pending counts before it is in
    amount_refunded)."""
    return ledger.payment_refund_committed(payment=payment)


@dataclass(frozen=True)
class Refundability:
    """The figures of rules.refundable_amount for one payment, in its minor units."""

    currency: str
    captured: int
    processed: int  # refunds Stripe made or is making (pending ones count)
    in_flight: int  # approved or processing requests, not yet refunded
    pending: int  # requested, not yet decided
    pending_ahead: int  # the part of `pending` that holds a claim before this refund
    refundable: int  # captured - processed - in_flight - pending_ahead, never below 0
    blocked_reason: str  # "" when refunds are allowed at all


def payment_refundability(
    *, payment: Payment, refund_request: RefundRequest | None = None
) -> Refundability:
    """What can still be refunded on `payment`, in its minor units: for a new request when
    `refund_request` is None, else for deciding or processing that request (left out of the
    sums; a pending one is behind the pending requests made before it, an approved one behind
    none). Callers about to move money hold a row lock on the payment (select_for_update)
    while they call this, so the figures cannot change under them."""
    requests = RefundRequest.objects.filter(payment=payment).order_by()
    pending = Q(status=RefundRequest.Status.PENDING)
    if refund_request is None:
        ahead = pending
    elif refund_request.status == RefundRequest.Status.PENDING:
        requests = requests.exclude(pk=refund_request.pk)
        ahead = pending & (
            Q(created_at__lt=refund_request.created_at)
            | Q(created_at=refund_request.created_at, pk__lt=refund_request.pk)
        )
    else:
        requests = requests.exclude(pk=refund_request.pk)
        ahead = None
    sums = requests.aggregate(
        in_flight=Sum("amount", filter=Q(status__in=RefundRequest.IN_FLIGHT_STATUSES)),
        pending=Sum("amount", filter=pending),
        **({} if ahead is None else {"pending_ahead": Sum("amount", filter=ahead)}),
    )
    captured = payment.amount if payment.is_captured else 0
    processed = payment_processed_amount(payment=payment)
    in_flight = sums["in_flight"] or 0
    pending_ahead = sums.get("pending_ahead") or 0
    return Refundability(
        currency=payment.currency,
        captured=captured,
        processed=processed,
        in_flight=in_flight,
        pending=sums["pending"] or 0,
        pending_ahead=pending_ahead,
        refundable=rules.refundable_amount(
            captured=captured, processed=processed, in_flight=in_flight, pending_ahead=pending_ahead
        ),
        blocked_reason=rules.payment_blocked_reason(payment),
    )
