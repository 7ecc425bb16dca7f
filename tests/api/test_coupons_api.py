"""Coupons in the API: the booking system's quote (the same rules function as the admin and
the redemption recorder), the coupons with their usage and statistics, the redemptions; each
with its permission matrix (tests/api/harness.py) and every answer schema-checked."""

from __future__ import annotations

import pytest

from payments import coupon_rules as rules
from payments.sync import upsert_payment_intents
from tests.api.harness import FINANCE_VIEWERS, assert_matrix, read_matrix
from tests.coupons.support import coupon_row, fixed_terms, intent, percent_terms
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

QUOTE = "/api/v1/coupons/quote/"


def quote(client, **body):
    body = {"code": "SAVE10", "amount": 5000, "currency": "usd", **body}
    return client.post(QUOTE, body, format="json")


def test_the_quote_answers_every_coupon_viewer_read_only_tokens_included(api_roles):
    coupon_row("SAVE10", percent_terms(1000))
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), quote)


def test_a_quote_that_applies_gives_the_discount_and_the_metadata_to_send(api_roles):
    coupon = coupon_row("SAVE10", percent_terms(1250, caps={"usd": 500}))
    body = quote(api_roles["finance"], code="save10", amount=3000).json()
    assert body == {
        "code": "SAVE10",
        "coupon": coupon.pk,
        "applies": True,
        "amount": {"amount": 3000, "currency": "usd", "display": "$30.00"},
        "discount": {"amount": 375, "currency": "usd", "display": "$3.75"},
        "amount_after_discount": {"amount": 2625, "currency": "usd", "display": "$26.25"},
        "refusals": [],
        "metadata": {"coupon_code": "SAVE10", "coupon_discount": "375"},
    }
    capped = quote(api_roles["finance"], amount=10_000).json()
    assert capped["discount"]["amount"] == 500


def test_a_refused_quote_names_each_rule_with_its_words(api_roles):
    coupon_row(
        "HOURS",
        fixed_terms(
            {"usd": 1000},
            minimums={"usd": 4000},
            product_kinds=("hour_package",),
            max_redemptions_per_customer=1,
        ),
    )
    response = quote(api_roles["finance"], code="HOURS", amount=3999, product_kind="course")
    assert response.status_code == 200
    body = response.json()
    assert (body["applies"], body["discount"]["amount"], body["metadata"]) == (False, 0, {})
    assert body["refusals"] == [
        {
            "rule": rules.RULE_MINIMUM,
            "message": rules.ERR_MINIMUM.format(code="HOURS", minimum="$40.00", amount="$39.99"),
        },
        {
            "rule": rules.RULE_PRODUCT_KIND,
            "message": rules.ERR_PRODUCT_KIND.format(code="HOURS", kinds="hour package"),
        },
        {
            "rule": rules.RULE_CUSTOMER_REQUIRED,
            "message": rules.ERR_CUSTOMER_REQUIRED.format(code="HOURS"),
        },
    ]
    unknown = quote(api_roles["finance"], code="NOPE").json()
    assert [r["rule"] for r in unknown["refusals"]] == [rules.RULE_UNKNOWN_CODE]
    assert unknown["coupon"] is None


def test_the_quote_counts_the_named_customers_redemptions(api_roles):
    coupon_row("ONCE", percent_terms(1000, max_redemptions_per_customer=1))
    ana = CustomerFactory(stripe_id="cus_ana", email="ana@example.com")
    upsert_payment_intents([intent("pi_ana", code="ONCE", discount=500, customer="cus_ana")])
    client = api_roles["finance"]
    for reference in ("cus_ana", "ANA@example.com"):
        body = quote(client, code="ONCE", customer=reference).json()
        assert [r["rule"] for r in body["refusals"]] == [rules.RULE_CUSTOMER_LIMIT], reference
    assert quote(client, code="ONCE", customer="new@example.com").json()["applies"] is True
    assert ana.coupon_redemptions.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": "12.50"}, "amount"),
        ({"currency": "usx"}, "currency"),
        ({"product_kind": "boat"}, "product_kind"),
    ],
)
def test_a_malformed_quote_is_refused_with_the_field(api_roles, body, field):
    response = quote(api_roles["finance"], **body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_coupons_list_with_usage_and_statistics(api_roles):
    coupon = coupon_row("STATS", fixed_terms({"usd": 500, "eur": 450}, max_redemptions=1))
    upsert_payment_intents(
        [
            intent("pi_st1", code="STATS", discount=500),
            intent("pi_st2", code="STATS", discount=450, currency="eur", amount=2000),
        ]
    )
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get("/api/v1/coupons/"))
    (row,) = api_roles["auditor"].get("/api/v1/coupons/?code=stats").json()["results"]
    assert (row["id"], row["status"], row["redemptions"], row["flagged_redemptions"]) == (
        coupon.pk,
        "used_up",
        2,
        1,
    )
    assert row["currencies"][0]["amount_off"] == {
        "amount": 450,
        "currency": "eur",
        "display": "€4.50",
    }
    body = api_roles["auditor"].get(f"/api/v1/coupons/{coupon.pk}/statistics/").json()
    assert (body["coupon"], body["code"]) == (coupon.pk, "STATS")
    stats = body["currencies"]
    assert [(s["currency"], s["redemptions"], s["discount"]["amount"]) for s in stats] == [
        ("eur", 1, 450),
        ("usd", 1, 500),
    ]
    assert stats[1]["conversion"] == "1.0000"
    redemptions = api_roles["finance"].get(
        f"/api/v1/coupon-redemptions/?coupon={coupon.pk}&flagged=true"
    )
    assert [r["payment"] for r in redemptions.json()["results"]] == ["pi_st2"]
    assert_matrix(
        api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get("/api/v1/coupon-redemptions/")
    )


def test_the_detail_endpoints_matrix(api_roles):
    coupon = coupon_row("DETAIL", percent_terms(1000))
    upsert_payment_intents([intent("pi_detail", code="DETAIL", discount=500)])
    redemption = coupon.redemptions.get()
    for path in (
        f"/api/v1/coupons/{coupon.pk}/",
        f"/api/v1/coupons/{coupon.pk}/statistics/",
        f"/api/v1/coupon-redemptions/{redemption.pk}/",
    ):
        assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c, p=path: c.get(p))
