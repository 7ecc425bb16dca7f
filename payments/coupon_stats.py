"""Reads for coupons: their usage on the list, and the statistics of the coupon page, the API
and the export. Every figure is per currency (never summed across currencies).

Definitions (the README says the same):
- redemptions: payments captured with the code (CouponRedemption rows), flagged ones
  included (they happened); `flagged` counts those the rules would have refused;
- discount given: the sum of the redemptions' discounts (minor units);
- revenue: what those payments brought in after the discount and net of refunds: the sum
  of each payment's amount minus its amount refunded (payments/ledger.py's column), before
  Stripe's fees;
- order value: the sum of the orders before the discount (revenue + discount, refunds
  aside);
- customers: distinct customers among the redemptions;
- conversion: of the payments that reached Stripe carrying the code (any status: failed,
  canceled and pending ones included; one per payment intent, so a retried intent counts
  once), the share captured. A quote that never became a payment is not counted: the
  booking system's quotes are not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from payments.models import Coupon, CouponRedemption, Payment

# Where a coupon stands for a new order now (the list's badge, the API's `status`).
STATUS_ACTIVE = "active"
STATUS_SCHEDULED = "scheduled"
STATUS_EXPIRED = "expired"
STATUS_USED_UP = "used_up"
STATUS_INACTIVE = "inactive"
STATUS_LABELS = {
    STATUS_ACTIVE: "Active",
    STATUS_SCHEDULED: "Scheduled",
    STATUS_EXPIRED: "Expired",
    STATUS_USED_UP: "Used up",
    STATUS_INACTIVE: "Inactive",
}


def coupon_status(coupon: Coupon, *, used: int, now=None) -> str:
    """One of the STATUS_* values: inactive (deactivated), expired (after valid_until),
    scheduled (before valid_from), used up (its total limit reached), else active."""
    now = now or timezone.now()
    if not coupon.active:
        return STATUS_INACTIVE
    if coupon.valid_until is not None and now > coupon.valid_until:
        return STATUS_EXPIRED
    if coupon.valid_from is not None and now < coupon.valid_from:
        return STATUS_SCHEDULED
    if coupon.max_redemptions is not None and used >= coupon.max_redemptions:
        return STATUS_USED_UP
    return STATUS_ACTIVE


@dataclass(frozen=True)
class CouponCurrencyStats:
    currency: str
    redemptions: int
    flagged: int
    customers: int
    discount: int
    revenue: int
    order_value: int
    attempts: int
    captured: int

    @property
    def conversion(self) -> Decimal | None:
        """Captured / attempts as a fraction (None when no payment carried the code)."""
        if not self.attempts:
            return None
        return (Decimal(self.captured) / Decimal(self.attempts)).quantize(Decimal("0.0001"))


def coupons_with_usage(queryset: QuerySet[Coupon] | None = None) -> QuerySet[Coupon]:
    """Coupons annotated with `used` (redemptions) and `flagged_uses`: one grouped query
    with the page, whatever its size."""
    queryset = Coupon.objects.all() if queryset is None else queryset
    return queryset.annotate(
        used=Count("redemptions", distinct=True),
        flagged_uses=Count("redemptions", filter=Q(redemptions__flagged=True), distinct=True),
    )


def coupon_statistics(*, coupon: Coupon) -> list[CouponCurrencyStats]:
    """The coupon's figures per currency (see the module docstring), in two queries:
    its redemptions grouped by currency, and the payments carrying its code grouped by
    currency (the partial index on Payment.coupon_code serves it)."""
    redeemed = {
        row["currency"]: row
        for row in CouponRedemption.objects.filter(coupon=coupon)
        .values("currency")
        .annotate(
            n=Count("id"),
            flagged_n=Count("id", filter=Q(flagged=True)),
            customers_n=Count("customer", distinct=True),
            discount=Sum("discount_amount"),
            revenue=Sum(F("payment__amount") - F("payment__amount_refunded")),
            order_value=Sum("order_amount"),
        )
    }
    carried = {
        row["currency"]: row
        for row in Payment.objects.filter(coupon_code=coupon.code)
        .values("currency")
        .annotate(
            attempts=Count("id"),
            captured=Count("id", filter=Q(status__in=Payment.CAPTURED_STATUSES)),
        )
    }
    stats = []
    for currency in sorted(set(redeemed) | set(carried)):
        r = redeemed.get(currency, {})
        c = carried.get(currency, {})
        stats.append(
            CouponCurrencyStats(
                currency=currency,
                redemptions=r.get("n", 0),
                flagged=r.get("flagged_n", 0),
                customers=r.get("customers_n", 0),
                discount=r.get("discount") or 0,
                revenue=r.get("revenue") or 0,
                order_value=r.get("order_value") or 0,
                attempts=c.get("attempts", 0),
                captured=c.get("captured", 0),
            )
        )
    return stats


def coupon_redemptions(*, coupon: Coupon) -> QuerySet[CouponRedemption]:
    """The coupon's redemptions, newest first, with what their rows show (one query)."""
    return (
        CouponRedemption.objects.filter(coupon=coupon)
        .select_related("payment", "customer")
        .order_by("-redeemed_at", "-id")
    )
