"""The demo's live purchases go through the gateway into localstripe (test mode only)."""

import pytest
import requests
from django.core.management import call_command

from management.demo_purchases import (
    ERR_TEST_MODE_ONLY,
    TEST_PAYMENT_METHOD_DECLINES,
    demo_purchase_create,
)
from payments.exceptions import CardDeclined

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


def intents(base):
    return requests.get(f"{base}/v1/payment_intents", auth=("sk_test_x", ""), timeout=5).json()


def test_demo_activity_creates_two_payments_and_one_decline(localstripe):
    call_command("demo_activity", "--key", "t1")
    rows = intents(localstripe)["data"]
    succeeded = sorted(pi["amount"] for pi in rows if pi["status"] == "succeeded")
    assert succeeded == [4900, 12900]
    customers = requests.get(f"{localstripe}/v1/customers", auth=("sk_test_x", ""), timeout=5)
    assert len(customers.json()["data"]) == 3


def test_a_purchase_is_a_confirmed_payment_of_the_customer_with_an_attached_card(localstripe):
    purchase = demo_purchase_create(
        amount=2500, currency="usd", email="p@example.com", name="P", key="t4"
    )
    intent = purchase.payment_intent
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 2500, "usd")
    assert (intent.customer_id, intent.payment_method_id) == (
        purchase.customer_id,
        purchase.payment_method_id,
    )
    # The attached copy, not Stripe's shared test id.
    assert purchase.payment_method_id.startswith("pm_")
    assert purchase.payment_method_id != "pm_card_visa"
    method = requests.get(
        f"{localstripe}/v1/payment_methods/{purchase.payment_method_id}",
        auth=("sk_test_x", ""),
        timeout=5,
    ).json()
    assert method["customer"] == purchase.customer_id


def test_declining_test_payment_method_raises_card_declined(localstripe):
    with pytest.raises(CardDeclined):
        demo_purchase_create(
            amount=1000,
            currency="usd",
            email="d@example.com",
            name="D",
            key="t2",
            test_payment_method=TEST_PAYMENT_METHOD_DECLINES,
        )


@pytest.mark.parametrize(
    ("key", "livemode"), [("sk_live_nope", False), ("rk_live_nope", False), ("sk_test_x", True)]
)
def test_test_purchases_refuse_a_live_key(localstripe, settings, key, livemode):
    settings.STRIPE_SECRET_KEY = key
    settings.STRIPE_LIVEMODE = livemode
    with pytest.raises(RuntimeError) as info:
        demo_purchase_create(amount=1000, currency="usd", email="d@example.com", name="D", key="t3")
    assert str(info.value) == ERR_TEST_MODE_ONLY
    assert intents(localstripe)["data"] == []
    customers = requests.get(f"{localstripe}/v1/customers", auth=("sk_test_x", ""), timeout=5)
    assert customers.json()["data"] == []
