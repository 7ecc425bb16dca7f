"""The demo's coupons: created through the services (so pushed to the peer), used by the
generator's payments and by purchases through the peer with the quoted discount in their
metadata; one coupon with a second Stripe version, one deactivated, one scheduled."""

import io

import pytest
import requests

from management.demo_coupons import WARN_NO_STRIPE, seed_coupon_purchases, seed_coupons
from management.demo_data import DemoGenerator, demo_size
from payments.coupon_stats import coupon_statistics
from payments.models import Coupon, CouponRedemption, PromotionCode

pytestmark = pytest.mark.django_db


def test_without_a_peer_coupons_exist_and_say_their_push_failed(settings):
    settings.STRIPE_API_BASE = ""
    out = io.StringIO()
    coupons = seed_coupons(stdout=out)
    assert WARN_NO_STRIPE in out.getvalue()
    assert len(coupons) == 7
    assert not Coupon.objects.filter(stripe_state="synced").exclude(code="SUMMER26").exists()
    assert seed_coupon_purchases() == 0


@pytest.mark.stripe
def test_the_demo_coupons_are_in_the_peer_and_used(localstripe):
    coupons = seed_coupons()
    assert {c.stripe_state for c in Coupon.objects.all()} == {"synced"}
    codes = requests.get(
        f"{localstripe}/v1/promotion_codes",
        params={"limit": 100},
        auth=("sk_test_x", ""),
        timeout=5,
    ).json()["data"]
    active = sorted(c["code"] for c in codes if c["active"])
    assert active == ["BLACKFRIDAY", "FRIENDS15", "HOURS20", "NEWYEAR27", "SPRING25", "WELCOME10"]
    black = coupons["BLACKFRIDAY"]
    assert black.terms_version == 2 and black.percent_off_bps == 3000
    assert [c["active"] for c in codes if c["code"] == "BLACKFRIDAY"] == [True, False]
    assert coupons["SUMMER26"].active is False

    DemoGenerator(seed=3).run(demo_size(600))
    assert seed_coupon_purchases() == 7
    assert seed_coupon_purchases() == 0  # idempotent

    generated = CouponRedemption.objects.filter(discount_source="computed")
    assert generated.exists()  # the generator's payments name codes, without a discount
    hours = coupon_statistics(coupon=Coupon.objects.get(code="HOURS20"))
    usd = next(s for s in hours if s.currency == "usd")
    # 20 % of 240, 120 and 300 dollars, the last capped at 50.
    assert (usd.redemptions, usd.discount, usd.flagged) == (3, 4800 + 2400 + 5000, 0)
    assert CouponRedemption.objects.filter(code="BLACKFRIDAY", terms_version=2).count() == 2
    assert PromotionCode.objects.filter(coupon__code="BLACKFRIDAY").count() == 2
