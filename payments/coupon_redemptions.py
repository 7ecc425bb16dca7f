"""A coupon redemption per captured payment that carried a code, written inside the payment
upsert's transaction (payments.sync.upsert_payment_intents), exactly once.

Exactly once: CouponRedemption.payment is unique, the upsert holds the payments' row locks,
and only payments without a redemption are read. A payment captured later (a webhook after
the sync saw it pending) gets its redemption then.

Counts under concurrent payments: the coupons of a page are locked FOR UPDATE (in pk order,
after the payments, as every writer locks them) before their redemptions are counted, so two
upserts of two payments with the same code count one after the other and the second sees the
first's redemption.

Nothing is dropped: the money has moved. A redemption the rules (payments/coupon_rules.py)
would have refused at the payment's creation time (a limit reached, expired, inactive, the
wrong currency or product, a code we do not know, a discount other than the coupon's) is
written all the same, `flagged`, with each refusal in `flags`.

The discount: the metadata contract's `coupon_discount` when the checkout sent it (what our
quote said); otherwise computed from the coupon's terms (a fixed amount; a percentage solved
back from the amount paid, cap included) and marked `computed`. The order amount is the
amount paid plus the discount.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db.models import Count

from payments.coupon_rules import (
    ERR_UNKNOWN_CODE,
    RULE_UNKNOWN_CODE,
    Order,
    Usage,
    coupon_discount,
    coupon_evaluate,
)
from payments.metadata import parse_payment_metadata
from payments.models import Coupon, CouponCurrency, CouponRedemption, Payment
from payments.money import format_money

RULE_DISCOUNT_MISMATCH = "discount_mismatch"
RULE_DISCOUNT_UNKNOWN = "discount_unknown"
ERR_DISCOUNT_MISMATCH = (
    "The checkout took {sent} off, but the coupon's terms give {expected} on this order."
)
ERR_DISCOUNT_UNKNOWN = (
    "The checkout sent no coupon_discount and the discount cannot be worked out from the terms."
)


def _order_before(
    coupon: Coupon, row: CouponCurrency | None, paid: int, currency: str
) -> int | None:
    """The order amount (before the discount) that leaves `paid` after `coupon`, or None
    when no whole amount does (a 100 % coupon, rounding with no exact answer)."""

    def after(order: int) -> int:
        return order - coupon_discount(coupon=coupon, terms=row, amount=order, currency=currency)

    if coupon.kind == Coupon.Kind.FIXED:
        if row is None or not row.amount_off:
            return None
        return paid + row.amount_off
    bps = coupon.percent_off_bps or 0
    if bps >= 10_000:
        return None
    guess = paid * 10_000 // (10_000 - bps)
    for order in range(max(paid, guess - 2), guess + 3):
        if after(order) == paid:
            return order
    if row is not None and row.max_discount is not None and after(paid + row.max_discount) == paid:
        return paid + row.max_discount
    return None


def _flag(rule: str, message: str) -> dict:
    return {"rule": rule, "message": message}


def record_coupon_redemptions(payment_intent_ids: Iterable[str]) -> list[CouponRedemption]:
    """Write the redemptions these payments are missing (captured, with a code, none yet).
    Call inside the transaction that holds the payments' locks. A fixed number of
    statements: the payments, the coupons (locked), their terms, two counts, one insert."""
    ids = list(payment_intent_ids)
    if not ids:
        return []
    payments = list(
        Payment.objects.filter(
            stripe_payment_intent_id__in=ids,
            status__in=Payment.CAPTURED_STATUSES,
            coupon_redemption__isnull=True,
        )
        .exclude(coupon_code="")
        .order_by("succeeded_at", "created", "pk")
    )
    if not payments:
        return []
    codes = {p.coupon_code for p in payments}
    # Locked in pk order (after the payments): the counts below are then this coupon's, with
    # no other writer adding to them until we commit.
    coupons = {
        c.code: c for c in Coupon.objects.select_for_update().filter(code__in=codes).order_by("pk")
    }
    terms: dict[int, dict[str, CouponCurrency]] = {}
    for row in CouponCurrency.objects.filter(coupon__in=coupons.values()):
        terms.setdefault(row.coupon_id, {})[row.currency] = row
    totals = Counter(
        dict(
            CouponRedemption.objects.filter(coupon__in=coupons.values())
            .values_list("coupon_id")
            .annotate(n=Count("id"))
            .values_list("coupon_id", "n")
        )
    )
    customers = {p.customer_id for p in payments if p.customer_id}
    by_customer = Counter(
        {
            (coupon_pk, customer_pk): n
            for coupon_pk, customer_pk, n in CouponRedemption.objects.filter(
                coupon__in=coupons.values(), customer_id__in=customers
            )
            .values_list("coupon_id", "customer_id")
            .annotate(n=Count("id"))
            .values_list("coupon_id", "customer_id", "n")
        }
    )
    redemptions = []
    for payment in payments:
        coupon = coupons.get(payment.coupon_code)
        redemptions.append(_redemption(payment, coupon, terms, totals, by_customer))
        if coupon is not None:
            totals[coupon.pk] += 1
            if payment.customer_id:
                by_customer[(coupon.pk, payment.customer_id)] += 1
    # A concurrent upsert of the same payment wrote it first: the unique payment keeps one.
    CouponRedemption.objects.bulk_create(redemptions, ignore_conflicts=True)
    return redemptions


def _redemption(
    payment: Payment,
    coupon: Coupon | None,
    terms: dict[int, dict[str, CouponCurrency]],
    totals: Counter,
    by_customer: Counter,
) -> CouponRedemption:
    currency = payment.currency
    sent = parse_payment_metadata(payment.metadata).coupon_discount
    flags: list[dict] = []
    redemption = CouponRedemption(
        payment=payment,
        coupon=coupon,
        code=payment.coupon_code,
        customer_id=payment.customer_id,
        currency=currency,
        terms_version=coupon.terms_version if coupon else None,
        redeemed_at=payment.succeeded_at or payment.created,
    )
    if coupon is None:
        flags.append(_flag(RULE_UNKNOWN_CODE, ERR_UNKNOWN_CODE.format(code=payment.coupon_code)))
        discount = sent or 0
        source = (
            CouponRedemption.DiscountSource.METADATA
            if sent is not None
            else CouponRedemption.DiscountSource.UNKNOWN
        )
    else:
        rows = terms.get(coupon.pk, {})
        row = rows.get(currency)
        if sent is not None:
            discount, source = sent, CouponRedemption.DiscountSource.METADATA
        else:
            order = _order_before(coupon, row, payment.amount, currency)
            if order is None:
                discount, source = 0, CouponRedemption.DiscountSource.UNKNOWN
                flags.append(_flag(RULE_DISCOUNT_UNKNOWN, ERR_DISCOUNT_UNKNOWN))
            else:
                discount, source = order - payment.amount, CouponRedemption.DiscountSource.COMPUTED
        decision = coupon_evaluate(
            coupon=coupon,
            terms=rows,
            order=Order(
                amount=payment.amount + discount,
                currency=currency,
                # The checkout applied the code when the payment was created.
                at=payment.created,
                product_kind=payment.product_kind,
                product_id=payment.product_id,
            ),
            usage=Usage(
                total=totals[coupon.pk],
                by_customer=by_customer[(coupon.pk, payment.customer_id)]
                if payment.customer_id
                else None,
            ),
        )
        flags.extend(_flag(r.rule, r.message) for r in decision.refusals)
        sent_other = source == CouponRedemption.DiscountSource.METADATA
        if decision.applies and sent_other and decision.discount != discount:
            flags.append(
                _flag(
                    RULE_DISCOUNT_MISMATCH,
                    ERR_DISCOUNT_MISMATCH.format(
                        sent=format_money(discount, currency),
                        expected=format_money(decision.discount, currency),
                    ),
                )
            )
    redemption.discount_amount = discount
    redemption.order_amount = payment.amount + discount
    redemption.discount_source = source
    redemption.flags = flags
    redemption.flagged = bool(flags)
    return redemption
