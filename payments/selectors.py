"""Reads. Every function here is side-effect free and returns querysets or plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, F, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from backoffice.changelist import SearchSpec, search_queryset

from .models import Customer, Dispute, Payment, PaymentMethodType, Refund, WebhookEvent
from .money import THREE_DECIMAL_CURRENCIES, ZERO_DECIMAL_CURRENCIES, Money

# What the payments and customers lists search (backoffice/changelist.py says how): whole
# Stripe ids in any case, and any part of the customer's name or e-mail.
PAYMENT_SEARCH = SearchSpec(
    ids=(
        ("pi_", "stripe_payment_intent_id"),
        ("ch_", "stripe_charge_id"),
        ("py_", "stripe_charge_id"),
        ("cus_", "customer__stripe_id"),
        ("pm_", "payment_method__stripe_id"),
        ("card_", "payment_method__stripe_id"),
        ("re_", "refunds__stripe_id"),
        ("pyr_", "refunds__stripe_id"),
        ("dp_", "disputes__stripe_id"),
        ("du_", "disputes__stripe_id"),
    ),
    text=("customer__name", "customer__email"),
    help_text=(
        "Searches: customer name or e-mail (any part, any case); a whole Stripe id in any "
        "case: payment pi_, charge ch_, customer cus_, payment method pm_, refund re_, "
        "dispute dp_."
    ),
)
CUSTOMER_SEARCH = SearchSpec(
    ids=(("cus_", "stripe_id"),),
    text=("name", "email"),
    help_text=(
        "Searches: name or e-mail (any part, any case); a whole Stripe customer id (cus_) in "
        "any case."
    ),
)


def amount_major_range_q(*, low: Decimal | None, high: Decimal | None) -> Q:
    """Payments whose amount is within [low, high] in major units (12.50), applied per
    currency exponent, so the same range means 12.50 USD, 12.500 KWD and 12 JPY. Either end
    may be None. The payments list's filter and the API's amount_from/amount_to use it."""

    def bounds(places: int) -> Q:
        q = Q()
        if low is not None:
            # Ceil: 0.005 USD as a minimum means at least 1 cent.
            q &= Q(amount__gte=int(-(-low.scaleb(places) // 1)))
        if high is not None:
            q &= Q(amount__lte=int(high.scaleb(places) // 1))
        return q

    zero, three = sorted(ZERO_DECIMAL_CURRENCIES), sorted(THREE_DECIMAL_CURRENCIES)
    return (
        (Q(currency__in=zero) & bounds(0))
        | (Q(currency__in=three) & bounds(3))
        | (~Q(currency__in=zero + three) & bounds(2))
    )


def payment_search(*, queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
    """Payments matching `term`: a whole Stripe id of the payment or of a related object (any
    case), else any part of the customer's name or e-mail."""
    return search_queryset(queryset, PAYMENT_SEARCH, term)


def customer_search(*, queryset: QuerySet[Customer], term: str) -> QuerySet[Customer]:
    """Customers by whole Stripe customer id (any case) or any part of name or e-mail."""
    return search_queryset(queryset, CUSTOMER_SEARCH, term)


def customer_list_annotated(*, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Adds payment_count and last_payment_at as correlated subqueries: evaluated only for the
    rows of the page, unlike a GROUP BY over every customer's payments."""
    payments = Payment.objects.filter(customer=OuterRef("pk")).order_by()
    return queryset.annotate(
        payment_count=Coalesce(
            Subquery(payments.values("customer").annotate(n=Count("*")).values("n")[:1]),
            Value(0),
        ),
        last_payment_at=Subquery(payments.order_by("-created").values("created")[:1]),
    )


@dataclass(frozen=True)
class CustomerSummary:
    spent: list[Money]  # captured minus refunded, one entry per currency
    payment_count: int
    preferred_method: str  # label of the most used payment method type, or ""
    last_payment_at: datetime | None


def customer_summary(*, customer: Customer) -> CustomerSummary:
    """What finance wants to know about a customer at a glance. Totals are per currency."""
    payments = Payment.objects.filter(customer=customer).order_by()
    spent = [
        Money(row["total"], row["currency"])
        for row in payments.filter(status__in=Payment.CAPTURED_STATUSES)
        .values("currency")
        .annotate(total=Sum(F("amount") - F("amount_refunded")))
        .order_by("currency")
    ]
    overall = payments.aggregate(n=Count("id"), last=Max("created"))
    top_method = (
        payments.values("payment_method_type")
        .annotate(n=Count("id"))
        .order_by("-n", "payment_method_type")
        .first()
    )
    preferred = PaymentMethodType(top_method["payment_method_type"]).label if top_method else ""
    return CustomerSummary(
        spent=spent,
        payment_count=overall["n"],
        preferred_method=preferred,
        last_payment_at=overall["last"],
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    title: str
    detail: str = ""
    tone: str = "info"  # success, info, warning, danger (Unfold's label colours)


def payment_timeline(*, payment: Payment) -> list[TimelineEntry]:
    """Created, then succeeded / failed / canceled, refunds and disputes, oldest first."""
    entries = [
        TimelineEntry(
            payment.created, "Payment created", str(Money(payment.amount, payment.currency))
        )
    ]
    if payment.succeeded_at:
        entries.append(TimelineEntry(payment.succeeded_at, "Payment succeeded", tone="success"))
    if payment.failed_at:
        reason = " / ".join(part for part in (payment.failure_code, payment.decline_code) if part)
        detail = f"{reason}: {payment.failure_message}" if reason else payment.failure_message
        entries.append(TimelineEntry(payment.failed_at, "Payment failed", detail, "danger"))
    if payment.canceled_at:
        entries.append(TimelineEntry(payment.canceled_at, "Payment canceled", tone="warning"))
    for refund in Refund.objects.filter(payment=payment).order_by("created", "id"):
        tone = "success" if refund.status == Refund.Status.SUCCEEDED else "warning"
        entries.append(
            TimelineEntry(
                refund.created,
                f"Refund {refund.get_status_display().lower()}",
                f"{Money(refund.amount, refund.currency)} {refund.reason}".strip(),
                tone,
            )
        )
    for dispute in Dispute.objects.filter(payment=payment).order_by("created", "id"):
        entries.append(
            TimelineEntry(
                dispute.created,
                f"Dispute opened ({dispute.get_status_display().lower()})",
                f"{Money(dispute.amount, dispute.currency)} {dispute.reason}".strip(),
                "danger",
            )
        )
        if dispute.closed_at:
            entries.append(TimelineEntry(dispute.closed_at, "Dispute closed", dispute.status))
    return sorted(entries, key=lambda entry: entry.at)


# --- Stripe webhook events (the dashboard, the sidebar badge, a payment's page) ---------------

HEALTH_WINDOW = timedelta(hours=24)


def webhook_health(*, now: datetime | None = None) -> dict:
    """Webhook health over the last 24 h: events that failed for good (`failed_24h`), events
    waiting for a retry (`retrying`, any age) and the average processing time in whole
    milliseconds of handled events finished in the window (`avg_processing_ms`, None without
    any; ignored types excluded).
    Three indexed queries (status + received_at, status, processed_at)."""
    now = now or timezone.now()
    since = now - HEALTH_WINDOW
    failed_24h = WebhookEvent.objects.filter(
        status=WebhookEvent.Status.FAILED, received_at__gte=since
    ).count()
    retrying = WebhookEvent.objects.filter(status=WebhookEvent.Status.RETRYING).count()
    # Ignored events (types we have no handler for) take no work: they would flatter it.
    average = (
        WebhookEvent.objects.filter(processed_at__gte=since, processing_ms__isnull=False)
        .exclude(status=WebhookEvent.Status.IGNORED)
        .aggregate(avg=Avg("processing_ms"))["avg"]
    )
    return {
        "failed_24h": failed_24h,
        "retrying": retrying,
        "avg_processing_ms": None if average is None else round(average),
    }


def webhook_failed_count() -> int:
    """Events that failed for good and wait for staff (the sidebar badge). Indexed count."""
    return WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).count()


def webhook_failed_badge(request) -> str:
    """Unfold sidebar badge callback: the failed count, or nothing when there is none."""
    count = webhook_failed_count()
    return str(count) if count else ""


def payment_object_ids(*, payment_pk: int) -> list[str]:
    """The Stripe ids events about a payment carry as data.object.id: its payment intent,
    charge, refunds and disputes. Three indexed reads."""
    row = (
        Payment.objects.filter(pk=payment_pk)
        .values_list("stripe_payment_intent_id", "stripe_charge_id")
        .first()
    )
    if row is None:
        return []
    ids = [i for i in row if i]
    ids += Refund.objects.filter(payment_id=payment_pk).values_list("stripe_id", flat=True)
    ids += Dispute.objects.filter(payment_id=payment_pk).values_list("stripe_id", flat=True)
    return ids


def webhook_events_for_object(*, object_id: str) -> QuerySet[WebhookEvent]:
    """Events about one Stripe object (pi_, ch_, re_, dp_ ...), oldest first."""
    return WebhookEvent.objects.filter(object_id=object_id).order_by("created", "id")


# --- Dispute evidence deadlines (alerts, the dashboard card, the sidebar badge) ---------------

# Disputes that still wait for our evidence (Stripe accepts it until `evidence_due_by`).
DISPUTE_NEEDS_RESPONSE_STATUSES = (
    Dispute.Status.NEEDS_RESPONSE,
    Dispute.Status.WARNING_NEEDS_RESPONSE,
)


def dispute_alert_thresholds() -> list[int]:
    """The alert thresholds in whole days, largest first (settings.DISPUTE_ALERT_DAYS)."""
    return sorted(
        {int(days) for days in settings.DISPUTE_ALERT_DAYS if int(days) > 0}, reverse=True
    )


def dispute_deadline_threshold(
    *, due_by: datetime, now: datetime, thresholds: list[int]
) -> int | None:
    """The threshold a deadline has crossed: the smallest t with 0 < due_by - now <= t days;
    None when it is further away than every threshold, or already passed."""
    left = due_by - now
    if left <= timedelta(0):
        return None
    crossed = [t for t in thresholds if left <= timedelta(days=t)]
    return min(crossed) if crossed else None


def dispute_needing_response_due_within(*, days: int, now: datetime | None = None):
    """Disputes needing a response whose deadline is in (now, now + days]; oldest deadline
    first. Served by dispute_status_due_idx (status, evidence_due_by)."""
    now = now or timezone.now()
    return Dispute.objects.filter(
        status__in=DISPUTE_NEEDS_RESPONSE_STATUSES,
        evidence_due_by__gt=now,
        evidence_due_by__lte=now + timedelta(days=days),
    ).order_by("evidence_due_by", "id")


def dispute_deadline_bands(*, now: datetime | None = None) -> dict[int, int]:
    """{threshold: disputes needing a response due within that many days but not within the
    next smaller threshold}, e.g. {7: 2, 3: 1, 1: 4} (1: due within a day). One query."""
    now = now or timezone.now()
    thresholds = dispute_alert_thresholds()
    if not thresholds:
        return {}
    bands = {}
    for index, days in enumerate(thresholds):
        smaller = thresholds[index + 1] if index + 1 < len(thresholds) else 0
        bands[str(days)] = Count(
            "id",
            filter=Q(
                evidence_due_by__gt=now + timedelta(days=smaller),
                evidence_due_by__lte=now + timedelta(days=days),
            ),
        )
    row = dispute_needing_response_due_within(days=thresholds[0], now=now).aggregate(**bands)
    return {int(days): row[days] or 0 for days in bands}


def dispute_deadline_badge(request) -> str:
    """Unfold sidebar badge callback: disputes needing a response due within the largest
    alert threshold, or nothing when there is none."""
    thresholds = dispute_alert_thresholds()
    if not thresholds:
        return ""
    count = dispute_needing_response_due_within(days=thresholds[0]).count()
    return str(count) if count else ""
