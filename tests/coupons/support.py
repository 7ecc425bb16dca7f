"""Helpers for the coupon tests: terms, a coupon written straight to the database (for
rules and redemptions that need no Stripe), and Stripe-shaped payment intents."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import Permission

from payments.gateway import StripePaymentIntent
from payments.models import Coupon, CouponCurrency
from payments.services.coupons import CouponTerms, CurrencyTerms
from tests.factories import UserFactory

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def percent_terms(bps=1000, *, caps=None, minimums=None, **fields) -> CouponTerms:
    """A percentage coupon; `caps`/`minimums` map currency -> minor units."""
    caps, minimums = caps or {}, minimums or {}
    currencies = tuple(
        CurrencyTerms(c, max_discount=caps.get(c), minimum_amount=minimums.get(c, 0))
        for c in sorted(set(caps) | set(minimums))
    )
    fields.setdefault("name", "Ten off")
    return CouponTerms(kind="percentage", percent_off_bps=bps, currencies=currencies, **fields)


def fixed_terms(amounts, *, minimums=None, **fields) -> CouponTerms:
    minimums = minimums or {}
    currencies = tuple(
        CurrencyTerms(c, amount_off=a, minimum_amount=minimums.get(c, 0))
        for c, a in sorted(amounts.items())
    )
    fields.setdefault("name", "Money off")
    return CouponTerms(kind="fixed", currencies=currencies, **fields)


def coupon_row(code="SAVE10", terms: CouponTerms | None = None, **fields) -> Coupon:
    """A coupon in the database only (never pushed): for rules and redemption tests."""
    terms = terms or percent_terms()
    coupon = Coupon.objects.create(
        code=code,
        name=terms.name,
        kind=terms.kind,
        percent_off_bps=terms.percent_off_bps,
        max_redemptions=terms.max_redemptions,
        max_redemptions_per_customer=terms.max_redemptions_per_customer,
        product_kinds=list(terms.product_kinds),
        product_ids=list(terms.product_ids),
        valid_from=terms.valid_from,
        valid_until=terms.valid_until,
        stripe_state=Coupon.StripeState.SYNCED,
        **fields,
    )
    for row in terms.currencies:
        CouponCurrency.objects.create(
            coupon=coupon,
            currency=row.currency,
            amount_off=row.amount_off,
            max_discount=row.max_discount,
            minimum_amount=row.minimum_amount,
        )
    return coupon


def coupon_manager(username="coupons", *perms):
    """A staff member holding the coupon permissions (all three unless `perms` says)."""
    user = UserFactory(username=username)
    codenames = perms or ("add_coupon", "change_coupon", "deactivate_coupon", "view_coupon")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh permission cache


def intent(
    pi="pi_cpn1",
    *,
    amount=4500,
    currency="usd",
    code="SAVE10",
    discount=None,
    customer="",
    status="succeeded",
    created=T0,
    kind="course",
    product_id="",
) -> StripePaymentIntent:
    metadata = {"instructor_email": "ada@example.com", "product_kind": kind}
    if code:
        metadata["coupon_code"] = code
    if discount is not None:
        metadata["coupon_discount"] = str(discount)
    if product_id:
        metadata["product_id"] = product_id
    return StripePaymentIntent(
        id=pi,
        amount=amount,
        currency=currency,
        status=status,
        created=created,
        customer_id=customer,
        latest_charge_id="ch_" + pi[3:],
        charge_status="succeeded" if status == "succeeded" else "",
        charge_created=created,
        stripe_fee=100 if status == "succeeded" else None,
        amount_received=amount if status == "succeeded" else 0,
        metadata=metadata,
    )
