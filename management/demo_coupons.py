"""Demo coupons, created through the coupon services (so pushed to the peer: a Stripe coupon
and promotion code each) and used by payments made through the peer, whose metadata carries
the code and the quoted discount as the booking system's checkout sends them.

`seed_coupons` runs before the demo generator: the generator's payments name three of these
codes (management/demo_data.COUPONS) and the payment upsert records their redemptions, some
beyond a limit (flagged). `seed_coupon_purchases` runs after it: real purchases at the peer,
each quoted first (payments.coupon_rules.coupon_quote, the API's quote), then mirrored with
the sync's upserts. One coupon has its terms changed (a second Stripe version, the first
promotion code switched off there), one is deactivated, one starts next month.

Without a reachable peer the coupons are created all the same (their Stripe push is
recorded as failed, "Send to Stripe again" resumes it) and the purchases are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from management.demo_purchases import demo_purchase_create, demo_purchase_mirror
from management.demo_refunds import _demo_instructor as demo_instructor_metadata
from management.demo_refunds import stripe_reachable
from payments import metadata as contract
from payments.coupon_rules import coupon_quote
from payments.exceptions import GatewayError
from payments.models import Coupon, Customer
from payments.services.coupons import (
    CouponTerms,
    CurrencyTerms,
    coupon_change,
    coupon_create,
    coupon_deactivate,
)

# Who creates and manages the demo's coupons (Finance staff may).
DEMO_COUPON_STAFF = "marketing.maya"
WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable: coupons created without their Stripe objects "
    "(their push is recorded as failed) and no purchases made with them."
)


def _staff():
    call_command("loaddata", "groups", verbosity=0)
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=DEMO_COUPON_STAFF,
        defaults={"is_staff": True, "email": f"{DEMO_COUPON_STAFF}@example.com"},
    )
    if created:
        user.set_unusable_password()
        user.save()
    user.groups.set(Group.objects.filter(name="Finance staff"))
    return User.objects.get(pk=user.pk)  # a fresh permission cache


def _money(currency: str, **amounts) -> CurrencyTerms:
    return CurrencyTerms(currency=currency, **amounts)


def demo_coupon_terms(now) -> dict[str, CouponTerms]:
    """The demo's coupons by code. Amounts in minor units of each row's currency."""
    return {
        # The generator's codes (management/demo_data.COUPONS).
        "WELCOME10": CouponTerms(
            name="Welcome 10 %",
            kind="percentage",
            percent_off_bps=1000,
            currencies=(
                _money("eur", max_discount=1800),
                _money("gbp", max_discount=1600),
                _money("jpy", max_discount=3000),
                _money("usd", max_discount=2000),
            ),
            max_redemptions_per_customer=1,
        ),
        "SPRING25": CouponTerms(
            name="Spring sale",
            kind="percentage",
            percent_off_bps=2500,
            currencies=(_money("usd", max_discount=3000, minimum_amount=4000),),
            max_redemptions=60,
            valid_until=now + timedelta(days=25),
        ),
        "FRIENDS15": CouponTerms(
            name="Friends and family",
            kind="fixed",
            currencies=(
                _money("eur", amount_off=1400),
                _money("gbp", amount_off=1200),
                _money("jpy", amount_off=2000),
                _money("usd", amount_off=1500),
            ),
        ),
        # Used by the purchases through the peer below.
        "HOURS20": CouponTerms(
            name="20 % off hour packages",
            kind="percentage",
            percent_off_bps=2000,
            currencies=(_money("usd", max_discount=5000), _money("eur", max_discount=4500)),
            product_kinds=("hour_package",),
            max_redemptions=50,
        ),
        "BLACKFRIDAY": CouponTerms(
            name="Black Friday",
            kind="percentage",
            percent_off_bps=2000,
            valid_until=now + timedelta(days=4),
        ),
        "SUMMER26": CouponTerms(
            name="Summer 2026",
            kind="fixed",
            currencies=(_money("usd", amount_off=1000, minimum_amount=3000),),
        ),
        "NEWYEAR27": CouponTerms(
            name="New year 2027",
            kind="percentage",
            percent_off_bps=1500,
            valid_from=now + timedelta(days=30),
            valid_until=now + timedelta(days=45),
        ),
    }


def seed_coupons(*, stdout=None) -> dict[str, Coupon]:
    """Create the demo's coupons through the services (idempotent: existing codes are kept);
    BLACKFRIDAY's terms changed once (30 % instead of 20 %: a new Stripe version), SUMMER26
    deactivated."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    staff = _staff()
    reachable = stripe_reachable()
    if not reachable:
        log(WARN_NO_STRIPE)
    now = timezone.now()
    coupons = {}
    for code, terms in demo_coupon_terms(now).items():
        coupon = Coupon.objects.filter(code=code).first()
        if coupon is None:
            coupon = coupon_create(code=code, terms=terms, acting_user=staff, push=reachable)
        coupons[code] = coupon
    black = coupons["BLACKFRIDAY"]
    if black.terms_version == 1 and black.active:
        from dataclasses import replace

        coupons["BLACKFRIDAY"], _ = coupon_change(
            coupon=black,
            terms=replace(CouponTerms.of(black), percent_off_bps=3000),
            acting_user=staff,
            push=reachable,
        )
    summer = coupons["SUMMER26"]
    if summer.active:
        coupons["SUMMER26"] = coupon_deactivate(
            coupon=summer,
            reason="The summer campaign is over.",
            acting_user=staff,
            push=reachable,
        )
    log(f"Coupons: {len(coupons)} ({', '.join(sorted(coupons))}).")
    return coupons


@dataclass(frozen=True)
class DemoCouponPurchase:
    key: str
    code: str
    amount: int  # the list price, minor units
    currency: str = "usd"
    hour_package: bool = False


HOUR_PACKAGE = {
    "product_kind": "hour_package",
    "product_id": "hour_package_002",
    "product_name": "10 tutoring hours",
    "package_minutes": "600",
}
COURSE = {
    "product_kind": "course",
    "product_id": "course_001",
    "product_name": "Python for Data Analysis",
}
PURCHASES = [
    DemoCouponPurchase("hours20-1", "HOURS20", 24000, hour_package=True),
    DemoCouponPurchase("hours20-2", "HOURS20", 12000, hour_package=True),
    DemoCouponPurchase("hours20-3", "HOURS20", 30000, hour_package=True),
    DemoCouponPurchase("hours20-eur", "HOURS20", 20000, currency="eur", hour_package=True),
    DemoCouponPurchase("blackfriday-1", "BLACKFRIDAY", 8000),
    DemoCouponPurchase("blackfriday-2", "BLACKFRIDAY", 15000),
    DemoCouponPurchase("friends-1", "FRIENDS15", 6000),
]


def seed_coupon_purchases(*, stdout=None) -> int:
    """Buy through the peer with coupons, as the checkout does: quote the code for the
    order, charge the amount after the discount, with the code and the quoted discount in the
    metadata; then mirror the purchase (the upsert records the redemption). Idempotent per
    purchase key. Returns how many were made."""
    if not stripe_reachable():
        return 0
    made = 0
    for purchase in PURCHASES:
        email = f"coupon.{purchase.key}@students.example.com"
        if Customer.objects.filter(email=email).exists():
            continue
        product = HOUR_PACKAGE if purchase.hour_package else COURSE
        quote = coupon_quote(
            code=purchase.code,
            amount=purchase.amount,
            currency=purchase.currency,
            product_kind=product["product_kind"],
            product_id=product["product_id"],
            customer_known=True,
        )
        metadata = {**demo_instructor_metadata(), **product}
        if quote.applies:
            metadata[contract.COUPON_CODE] = quote.code
            metadata[contract.COUPON_DISCOUNT] = str(quote.discount)
        try:
            bought = demo_purchase_create(
                amount=quote.amount_after_discount,
                currency=purchase.currency,
                email=email,
                name=f"Coupon buyer {purchase.key}",
                key=f"demo:coupon:{purchase.key}",
                metadata=metadata,
            )
            demo_purchase_mirror(bought)
        except GatewayError as exc:
            if stdout is not None:
                stdout.write(f"WARNING: coupon purchase {purchase.key} failed: {exc}")
            continue
        made += 1
    if stdout is not None:
        stdout.write(f"Coupon purchases through localstripe: {made}.")
    return made
