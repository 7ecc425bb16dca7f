"""Redemptions recorded by the payment upsert (payments/coupon_redemptions.py): once per
captured payment whatever the replays, the discount from the metadata or the terms, and a
redemption the rules would refuse recorded and flagged, never dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payments import coupon_rules as rules
from payments.coupon_redemptions import RULE_DISCOUNT_MISMATCH, RULE_DISCOUNT_UNKNOWN
from payments.models import CouponRedemption, Customer
from payments.sync import upsert_payment_intents
from tests.coupons.support import T0, coupon_row, fixed_terms, intent, percent_terms
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def flags(redemption) -> list[str]:
    return [f["rule"] for f in redemption.flags]


def test_a_captured_payment_with_a_code_is_redeemed_once_whatever_the_replays():
    coupon = coupon_row("SAVE10", percent_terms(1000))
    snapshot = intent(amount=4500, discount=500)
    for _ in range(3):
        upsert_payment_intents([snapshot])
    redemption = CouponRedemption.objects.get()
    assert (redemption.coupon, redemption.code, redemption.currency) == (coupon, "SAVE10", "usd")
    assert (redemption.discount_amount, redemption.order_amount) == (500, 5000)
    assert redemption.discount_source == CouponRedemption.DiscountSource.METADATA
    assert (redemption.flagged, redemption.flags, redemption.terms_version) == (False, [], 1)
    assert redemption.redeemed_at == T0


def test_a_payment_is_redeemed_when_it_is_captured_not_before():
    coupon_row("SAVE10", percent_terms(1000))
    upsert_payment_intents([intent(status="processing")])
    assert not CouponRedemption.objects.exists()
    upsert_payment_intents([intent(status="requires_payment_method")])
    assert not CouponRedemption.objects.exists()
    upsert_payment_intents([intent(status="succeeded", discount=500)])
    assert CouponRedemption.objects.count() == 1


def test_codes_match_whatever_their_case():
    coupon = coupon_row("SAVE10", percent_terms(1000))
    upsert_payment_intents([intent(code="save10", discount=500)])
    assert CouponRedemption.objects.get().coupon == coupon


def test_without_coupon_discount_a_fixed_discount_comes_from_the_terms():
    coupon_row("FIVE", fixed_terms({"usd": 500, "eur": 450}))
    upsert_payment_intents([intent("pi_eur", amount=2550, currency="eur", code="FIVE")])
    redemption = CouponRedemption.objects.get()
    assert (redemption.discount_amount, redemption.order_amount) == (450, 3000)
    assert redemption.discount_source == CouponRedemption.DiscountSource.COMPUTED
    assert not redemption.flagged


def test_without_coupon_discount_a_percentage_is_solved_back_from_the_amount_paid():
    coupon_row("QUARTER", percent_terms(2500, caps={"usd": 1000}))
    upsert_payment_intents(
        [
            intent("pi_small", amount=3000, code="QUARTER"),  # 40.00 - 25 % = 30.00
            intent("pi_capped", amount=9000, code="QUARTER"),  # 100.00 - 10.00 (the cap)
        ]
    )
    by_pi = {
        r.payment.stripe_payment_intent_id: r
        for r in CouponRedemption.objects.select_related("payment")
    }
    assert (by_pi["pi_small"].order_amount, by_pi["pi_small"].discount_amount) == (4000, 1000)
    assert (by_pi["pi_capped"].order_amount, by_pi["pi_capped"].discount_amount) == (10000, 1000)


def test_a_hundred_percent_coupon_without_coupon_discount_is_flagged_not_guessed():
    coupon_row("FREE", percent_terms(10_000))
    upsert_payment_intents([intent(amount=100, code="FREE")])
    redemption = CouponRedemption.objects.get()
    assert (redemption.discount_amount, redemption.discount_source) == (0, "unknown")
    assert flags(redemption) == [RULE_DISCOUNT_UNKNOWN]


def test_a_redemption_beyond_the_total_limit_is_recorded_and_flagged():
    coupon_row("TWO", fixed_terms({"usd": 500}, max_redemptions=2))
    upsert_payment_intents(
        [
            intent(f"pi_lim{i}", code="TWO", discount=500, created=T0 + timedelta(minutes=i))
            for i in range(3)
        ]
    )
    rows = list(CouponRedemption.objects.order_by("redeemed_at"))
    assert [flags(r) for r in rows] == [[], [], [rules.RULE_TOTAL_LIMIT]]
    assert rows[2].flags[0]["message"] == rules.ERR_TOTAL_LIMIT.format(code="TWO", limit=2)
    # One more in a later page: also counted after the first three.
    upsert_payment_intents([intent("pi_lim9", code="TWO", discount=500)])
    assert flags(CouponRedemption.objects.get(payment__stripe_payment_intent_id="pi_lim9")) == [
        rules.RULE_TOTAL_LIMIT
    ]


def test_the_per_customer_limit_counts_each_customer_apart():
    coupon_row("ONCE", percent_terms(1000, max_redemptions_per_customer=1))
    ana, bo = CustomerFactory(stripe_id="cus_ana"), CustomerFactory(stripe_id="cus_bo")
    upsert_payment_intents(
        [
            intent("pi_a1", code="ONCE", discount=500, customer=ana.stripe_id),
            intent("pi_b1", code="ONCE", discount=500, customer=bo.stripe_id),
            intent("pi_a2", code="ONCE", discount=500, customer=ana.stripe_id),
            intent("pi_x", code="ONCE", discount=500),  # no customer: cannot be counted
        ]
    )
    result = {
        r.payment.stripe_payment_intent_id: flags(r)
        for r in CouponRedemption.objects.select_related("payment")
    }
    assert result == {
        "pi_a1": [],
        "pi_b1": [],
        "pi_a2": [rules.RULE_CUSTOMER_LIMIT],
        "pi_x": [rules.RULE_CUSTOMER_REQUIRED],
    }
    assert Customer.objects.get(stripe_id="cus_ana").coupon_redemptions.count() == 2


def test_rules_are_judged_at_the_payments_creation_time():
    coupon_row("LATE", percent_terms(1000, valid_until=T0 - timedelta(days=1)))
    upsert_payment_intents([intent(code="LATE", discount=500)])
    assert flags(CouponRedemption.objects.get()) == [rules.RULE_EXPIRED]


def test_an_unknown_code_is_recorded_without_a_coupon():
    upsert_payment_intents([intent(code="GHOST", discount=300)])
    redemption = CouponRedemption.objects.get()
    assert (redemption.coupon, redemption.code, redemption.discount_amount) == (None, "GHOST", 300)
    assert flags(redemption) == [rules.RULE_UNKNOWN_CODE]


def test_a_discount_other_than_the_terms_is_flagged():
    coupon_row("SAVE10", percent_terms(1000))
    upsert_payment_intents([intent(amount=4000, discount=1000)])  # 10 % of 50.00 is 5.00
    redemption = CouponRedemption.objects.get()
    assert flags(redemption) == [RULE_DISCOUNT_MISMATCH]
    assert redemption.flags[0]["message"] == (
        "The checkout took $10.00 off, but the coupon's terms give $5.00 on this order."
    )
    assert redemption.discount_amount == 1000  # what the money says, not what we think


def test_payments_without_a_code_have_no_redemption():
    coupon_row("SAVE10", percent_terms(1000))
    upsert_payment_intents([intent(code="")])
    assert not CouponRedemption.objects.exists()
