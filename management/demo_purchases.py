"""Demo purchases: a student buying a course with a card, in Stripe TEST mode only.

The back-office never takes payments itself; the demo (and its tests) need a few real
payments in the configured Stripe (localstripe) so that webhooks, the sync and refunds have
something to work on. A purchase is composed from the gateway's generic calls: create the
customer, attach one of Stripe's documented test payment methods (no card number ever
leaves this module, or any other), then create and confirm the payment intent.

Refuses to run with anything but a test-mode key: a demo must never charge a real card.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from payments import gateway, sync
from payments.models import Payment

# Stripe's test payment methods (https://docs.stripe.com/testing, also served by localstripe):
# a Visa that succeeds, and one that attaches to the customer, then declines on payment.
TEST_PAYMENT_METHOD_SUCCEEDS = "pm_card_visa"
TEST_PAYMENT_METHOD_DECLINES = "pm_card_chargeCustomerFail"
# Stripe's dispute test payment methods (docs.stripe.com/testing#disputes; the project's
# localstripe launcher serves them): the payment succeeds, then the cardholder's bank opens
# a fraudulent dispute / a product-not-received dispute / an inquiry.
TEST_PAYMENT_METHOD_DISPUTED = "pm_card_createDispute"
TEST_PAYMENT_METHOD_DISPUTED_NOT_RECEIVED = "pm_card_createDisputeProductNotReceived"
TEST_PAYMENT_METHOD_INQUIRY = "pm_card_createDisputeInquiry"

ERR_TEST_MODE_ONLY = "Test purchases are only ever created with a test-mode key."


@dataclass(frozen=True, slots=True)
class DemoPurchase:
    customer_id: str
    payment_method_id: str
    payment_intent: gateway.StripePaymentIntent


def demo_purchase_create(
    *,
    amount: int,
    currency: str,
    email: str,
    name: str,
    key: str,
    test_payment_method: str = TEST_PAYMENT_METHOD_SUCCEEDS,
    metadata: dict | None = None,
) -> DemoPurchase:
    """A student's card purchase of `amount` minor units of `currency`, in TEST mode: a new
    customer, `test_payment_method` attached to them, a confirmed payment intent carrying
    `metadata` (the marketplace's metadata contract, as the checkout sends it). `key`
    prefixes the idempotency keys, so the same key never buys twice.

    Raises RuntimeError (ERR_TEST_MODE_ONLY) with a live key, before any call; CardDeclined
    for a declining test payment method; another GatewayError otherwise."""
    if settings.STRIPE_LIVEMODE or not str(settings.STRIPE_SECRET_KEY).startswith("sk_test"):
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    customer = gateway.stripe_customer_create(
        email=email, name=name, idempotency_key=f"{key}:customer"
    )
    method = gateway.stripe_payment_method_attach(
        payment_method_id=test_payment_method,
        customer_id=customer.id,
        idempotency_key=f"{key}:attach",
    )
    intent = gateway.stripe_payment_intent_create(
        amount=amount,
        currency=currency,
        customer_id=customer.id,
        payment_method_id=method.id,
        confirm=True,
        metadata=metadata,
        idempotency_key=f"{key}:pi",
    )
    return DemoPurchase(customer_id=customer.id, payment_method_id=method.id, payment_intent=intent)


def demo_purchase_mirror(purchase: DemoPurchase) -> Payment:
    """Mirror a purchase the way production does: re-read the customer, the payment method
    and the payment intent through the gateway and write them with the sync's upserts."""
    customer = gateway.stripe_customer_retrieve(customer_id=purchase.customer_id)
    method = gateway.stripe_payment_method_retrieve(payment_method_id=purchase.payment_method_id)
    intent = gateway.stripe_payment_intent_retrieve(payment_intent_id=purchase.payment_intent.id)
    with transaction.atomic():
        sync.upsert_customers([customer])
        sync.upsert_payment_methods([method])
        sync.upsert_payment_intents([intent])
    return Payment.objects.get(stripe_payment_intent_id=intent.id)
