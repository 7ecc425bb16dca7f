"""Subscriptions made at the peer through the gateway (as the demo makes them), and a
Stripe-shaped subscription for tests that need no peer."""

from __future__ import annotations

from datetime import UTC, datetime

import requests
from django.conf import settings

from payments import gateway

CARD_OK = "pm_card_visa"
CARD_DECLINES = "pm_card_chargeCustomerFail"  # attaches, then every charge is declined


def monthly_price(key: str = "price", *, amount: int = 4900, currency: str = "usd"):
    return gateway.stripe_price_create(
        product_name="Tutoring membership",
        nickname="Monthly tutoring",
        unit_amount=amount,
        currency=currency,
        interval="month",
        idempotency_key=f"{key}:price",
    )


def subscribe(*, email: str, price, key: str, card: str = CARD_OK, trial_days=None):
    """A new customer with `card` as their default, subscribed to `price`."""
    customer = gateway.stripe_customer_create(
        email=email, name=email.split("@")[0].title(), idempotency_key=f"{key}:customer"
    )
    method = gateway.stripe_payment_method_attach(
        payment_method_id=card, customer_id=customer.id, idempotency_key=f"{key}:attach"
    )
    gateway.stripe_customer_default_payment_method_set(
        customer_id=customer.id, payment_method_id=method.id, idempotency_key=f"{key}:default"
    )
    subscription = gateway.stripe_subscription_create(
        customer_id=customer.id,
        price_id=price.id,
        trial_period_days=trial_days,
        idempotency_key=f"{key}:subscription",
    )
    return customer, method, subscription


def renew(subscription_id: str) -> None:
    """The peer's test clock: the current period ends now (scripts/localstripe_subscriptions.py)."""
    requests.post(
        f"{settings.STRIPE_API_BASE}/_config/subscriptions/{subscription_id}/renew", timeout=5
    ).raise_for_status()


def stripe_subscription(**overrides) -> gateway.StripeSubscription:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    values = {
        "id": "sub_test0001",
        "customer_id": "cus_test0001",
        "status": "active",
        "created": now,
        "currency": "usd",
        "amount": 4900,
        "interval": "month",
        "items_count": 1,
        "price_id": "price_test0001",
        "product_id": "prod_test0001",
        "plan_name": "Monthly tutoring",
        "current_period_start": now,
        "current_period_end": datetime(2026, 12, 20, 12, tzinfo=UTC),
        "latest_invoice_id": "in_test0001",
        "latest_invoice_status": "paid",
        "latest_invoice_amount_due": 4900,
        "latest_invoice_amount_paid": 4900,
    }
    values.update(overrides)
    return gateway.StripeSubscription(**values)
