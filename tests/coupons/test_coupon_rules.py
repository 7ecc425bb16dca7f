"""payments/coupon_rules.py: each rule just inside and just outside its limit, the discount
against a second computation (Decimal, rounded half up), and the quote reading the counts."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments import coupon_rules as rules
from payments.coupon_rules import Order, Usage, coupon_evaluate, coupon_quote
from payments.models import Coupon, CouponCurrency, CouponRedemption
from tests.coupons.support import T0, coupon_row, fixed_terms, percent_terms
from tests.factories import CustomerFactory, PaymentFactory

TICK = timedelta(microseconds=1)


def coupon(kind="percentage", bps=1000, **fields) -> Coupon:
    """An unsaved coupon: the rules read only its fields."""
    fields.setdefault("code", "SAVE10")
    fields.setdefault("active", True)
    return Coupon(kind=kind, percent_off_bps=bps if kind == "percentage" else None, **fields)


def terms(*rows: CouponCurrency) -> dict[str, CouponCurrency]:
    return {row.currency: row for row in rows}


def usd(**fields) -> CouponCurrency:
    return CouponCurrency(currency="usd", **fields)


NO_USAGE = Usage()


def decide(c: Coupon, *, amount=5000, currency="usd", at=T0, usage=NO_USAGE, rows=(), **order):
    return coupon_evaluate(
        coupon=c,
        terms=terms(*rows),
        order=Order(amount=amount, currency=currency, at=at, **order),
        usage=usage,
    )


def rules_refusing(decision) -> list[str]:
    return [r.rule for r in decision.refusals]


# --- one rule at a time: just inside, just outside ----------------------------------------------


def test_active_and_inactive():
    assert decide(coupon()).applies
    off = decide(coupon(active=False))
    assert rules_refusing(off) == [rules.RULE_INACTIVE]
    assert off.refusals[0].message == rules.ERR_INACTIVE.format(code="SAVE10")
    assert off.discount == 0


def test_valid_from_is_the_first_instant_it_applies():
    c = coupon(valid_from=T0)
    assert decide(c, at=T0).applies
    assert rules_refusing(decide(c, at=T0 - TICK)) == [rules.RULE_NOT_STARTED]


def test_valid_until_is_the_last_instant_it_applies():
    c = coupon(valid_until=T0)
    assert decide(c, at=T0).applies
    assert rules_refusing(decide(c, at=T0 + TICK)) == [rules.RULE_EXPIRED]


def test_minimum_order_is_inclusive_and_per_currency():
    rows = [usd(minimum_amount=3000)]
    assert decide(coupon(), amount=3000, rows=rows).applies
    below = decide(coupon(), amount=2999, rows=rows)
    assert rules_refusing(below) == [rules.RULE_MINIMUM]
    assert below.refusals[0].message == rules.ERR_MINIMUM.format(
        code="SAVE10", minimum="$30.00", amount="$29.99"
    )
    # No minimum in yen: the dollar one does not apply there.
    assert decide(coupon(), amount=1, currency="jpy", rows=rows).applies


def test_a_fixed_coupon_applies_only_in_its_currencies():
    rows = [usd(amount_off=500)]
    assert decide(coupon("fixed"), rows=rows).discount == 500
    eur = decide(coupon("fixed"), currency="eur", rows=rows)
    assert rules_refusing(eur) == [rules.RULE_CURRENCY]
    assert eur.refusals[0].message == rules.ERR_CURRENCY.format(code="SAVE10", currency="EUR")


def test_product_kind_targeting():
    c = coupon(product_kinds=["hour_package", "event"])
    assert decide(c, product_kind="event").applies
    refused = decide(c, product_kind="course")
    assert rules_refusing(refused) == [rules.RULE_PRODUCT_KIND]
    assert refused.refusals[0].message == rules.ERR_PRODUCT_KIND.format(
        code="SAVE10", kinds="hour package, event"
    )
    assert decide(coupon(), product_kind="course").applies  # no targeting: every kind


def test_product_id_targeting():
    c = coupon(product_ids=["pkg_10h"])
    assert decide(c, product_id="pkg_10h").applies
    assert rules_refusing(decide(c, product_id="pkg_5h")) == [rules.RULE_PRODUCT]
    assert rules_refusing(decide(c)) == [rules.RULE_PRODUCT]


def test_total_limit_counts_redemptions_so_far():
    c = coupon(max_redemptions=3)
    assert decide(c, usage=Usage(total=2)).applies
    refused = decide(c, usage=Usage(total=3))
    assert rules_refusing(refused) == [rules.RULE_TOTAL_LIMIT]
    assert refused.refusals[0].message == rules.ERR_TOTAL_LIMIT.format(code="SAVE10", limit=3)


def test_per_customer_limit_and_an_unknown_customer():
    c = coupon(max_redemptions_per_customer=2)
    assert decide(c, usage=Usage(total=50, by_customer=1)).applies
    assert rules_refusing(decide(c, usage=Usage(by_customer=2))) == [rules.RULE_CUSTOMER_LIMIT]
    assert rules_refusing(decide(c, usage=Usage(by_customer=None))) == [
        rules.RULE_CUSTOMER_REQUIRED
    ]
    # Without a per-customer limit, nobody needs to say who buys.
    assert decide(coupon(), usage=Usage(by_customer=None)).applies


def test_every_refusing_rule_is_named_at_once():
    c = coupon(
        "fixed",
        active=False,
        valid_until=T0 - TICK,
        product_kinds=["event"],
        max_redemptions=1,
    )
    decision = decide(c, currency="eur", usage=Usage(total=1), product_kind="course")
    assert rules_refusing(decision) == [
        rules.RULE_INACTIVE,
        rules.RULE_EXPIRED,
        rules.RULE_CURRENCY,
        rules.RULE_PRODUCT_KIND,
        rules.RULE_TOTAL_LIMIT,
    ]
    assert (decision.applies, decision.discount, decision.amount_after_discount) == (
        False,
        0,
        5000,
    )


# --- the discount ------------------------------------------------------------------------------


def test_the_cap_is_reached_exactly():
    rows = [usd(max_discount=1000)]
    # 10 % of 99.99 is 10.00 (rounded half up from 9.999): just at the cap.
    assert decide(coupon(), amount=9999, rows=rows).discount == 1000
    assert decide(coupon(), amount=9989, rows=rows).discount == 999  # just inside
    assert decide(coupon(), amount=10_011, rows=rows).discount == 1000  # capped


def test_a_fixed_discount_never_exceeds_the_order():
    rows = [usd(amount_off=500)]
    assert decide(coupon("fixed"), amount=501, rows=rows).amount_after_discount == 1
    assert decide(coupon("fixed"), amount=500, rows=rows).amount_after_discount == 0
    assert decide(coupon("fixed"), amount=300, rows=rows).discount == 300


@given(
    amount=st.integers(min_value=1, max_value=10**10),
    bps=st.integers(min_value=1, max_value=10_000),
    cap=st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
)
def test_a_percentage_discount_is_the_rounded_share_capped(amount, bps, cap):
    rows = [usd(max_discount=cap)]
    discount = decide(coupon(bps=bps), amount=amount, rows=rows).discount
    share = (Decimal(amount) * bps / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    expected = int(share) if cap is None else min(int(share), cap)
    assert discount == min(expected, amount)
    assert 0 <= discount <= amount


@given(
    amount=st.integers(min_value=1, max_value=10**9),
    minimum=st.integers(min_value=0, max_value=10**9),
)
def test_the_minimum_rule_is_exactly_amount_at_least_minimum(amount, minimum):
    decision = decide(coupon(), amount=amount, rows=[usd(minimum_amount=minimum)])
    assert decision.applies is (amount >= minimum)


# --- the quote (database) ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_quote_for_an_unknown_code_says_so():
    decision = coupon_quote(code="nope", amount=1000, currency="usd")
    assert (decision.code, decision.coupon, rules_refusing(decision)) == (
        "NOPE",
        None,
        [rules.RULE_UNKNOWN_CODE],
    )


@pytest.mark.django_db
def test_a_quote_counts_redemptions_whatever_the_code_case():
    saved = coupon_row(
        "TWICE",
        fixed_terms({"usd": 700}, max_redemptions=3, max_redemptions_per_customer=1),
    )
    ana, bo = CustomerFactory(), CustomerFactory()
    for customer in (ana, bo):
        payment = PaymentFactory(customer=customer, coupon_code="TWICE")
        CouponRedemption.objects.create(
            payment=payment,
            coupon=saved,
            code="TWICE",
            customer=customer,
            currency="usd",
            discount_amount=700,
            order_amount=payment.amount + 700,
            discount_source="metadata",
            redeemed_at=payment.created,
        )
    quote = coupon_quote(code="twice", amount=4000, currency="usd", customer=ana)
    assert rules_refusing(quote) == [rules.RULE_CUSTOMER_LIMIT]
    new = coupon_quote(code="twice", amount=4000, currency="usd", customer_known=True)
    assert (new.applies, new.discount, new.amount_after_discount) == (True, 700, 3300)
    anonymous = coupon_quote(code="twice", amount=4000, currency="usd")
    assert rules_refusing(anonymous) == [rules.RULE_CUSTOMER_REQUIRED]
    coupon_row("OTHER", percent_terms(2000))
    saved.max_redemptions = 2
    saved.save()
    full = coupon_quote(code="TWICE", amount=4000, currency="usd", customer_known=True)
    assert rules_refusing(full) == [rules.RULE_TOTAL_LIMIT]
