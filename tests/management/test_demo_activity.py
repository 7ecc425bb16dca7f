"""The demo's live purchases go through the gateway into localstripe (test mode only)."""

import pytest
import requests
from django.core.management import call_command

from payments import gateway
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


def test_declining_card_raises_card_declined(localstripe):
    with pytest.raises(CardDeclined):
        gateway.stripe_test_purchase_create(
            amount=1000,
            currency="usd",
            email="d@example.com",
            name="D",
            key="t2",
            card_number=gateway.TEST_CARD_DECLINES,
        )


def test_test_purchases_refuse_a_live_key(localstripe, settings):
    settings.STRIPE_SECRET_KEY = "sk_live_nope"
    with pytest.raises(RuntimeError, match="test-mode key"):
        gateway.stripe_test_purchase_create(
            amount=1000, currency="usd", email="d@example.com", name="D", key="t3"
        )
    assert intents(localstripe)["data"] == []
