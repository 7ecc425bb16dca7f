"""Gateway calls against localstripe over real HTTP: retrieve, confirm (retry a failed
payment), refunds, and Stripe's errors turned into ours. localstripe sets no decline_code on
declines (test_gateway_unit.py covers that mapping with a Stripe-shaped error)."""

import pytest

from payments import gateway
from payments.exceptions import AuthenticationFailed, CardDeclined, ResourceMissing
from tests.management.stripe_peer import CARD_DECLINED, CARD_OK, make_customer, setup_peer

pytestmark = pytest.mark.stripe


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def new_card(client, customer, number):
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 3, "exp_year": 2032, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return method


def test_confirm_with_a_declined_card_raises_card_declined(peer):
    c = peer.client
    customer, _ = make_customer(c, email="retry@example.com")
    bad = new_card(c, customer, CARD_DECLINED)
    intent = c.v1.payment_intents.create(
        params={"amount": 4200, "currency": "usd", "customer": customer.id}
    )
    with pytest.raises(CardDeclined) as info:
        gateway.stripe_payment_intent_confirm(
            payment_intent_id=intent.id, payment_method_id=bad.id, idempotency_key="retry:1:a"
        )
    assert info.value.code == "card_declined"
    assert info.value.message == "Your card was declined."
    failed = gateway.stripe_payment_intent_retrieve(payment_intent_id=intent.id)
    assert (failed.status, failed.failure_code) == ("requires_payment_method", "card_declined")
    assert failed.payment_method_id == bad.id


def test_confirm_with_a_good_card_succeeds(peer):
    """localstripe cannot confirm an intent a second time after a decline (its status is
    computed from the failed charge), so the success path uses a fresh intent."""
    c = peer.client
    customer, good = make_customer(c, email="ok@example.com")
    intent = c.v1.payment_intents.create(
        params={"amount": 4200, "currency": "usd", "customer": customer.id}
    )
    confirmed = gateway.stripe_payment_intent_confirm(
        payment_intent_id=intent.id, payment_method_id=good.id, idempotency_key="retry:2:a"
    )
    assert (confirmed.status, confirmed.payment_method_id) == ("succeeded", good.id)
    assert confirmed.amount_received == 4200


def test_retrieve_functions_map_current_objects(peer):
    c = peer.client
    customer, card = make_customer(c, email="Read@Example.com", name="Reader", card=CARD_OK)
    assert gateway.stripe_customer_retrieve(customer_id=customer.id).email == "read@example.com"
    method = gateway.stripe_payment_method_retrieve(payment_method_id=card.id)
    assert (method.customer_id, method.card_last4) == (customer.id, "4242")
    intent = c.v1.payment_intents.create(
        params={
            "amount": 999,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card.id,
            "confirm": True,
        }
    )
    refund = gateway.stripe_refund_create(
        payment_intent_id=intent.id, amount=99, idempotency_key="refund:1"
    )
    again = gateway.stripe_refund_retrieve(refund_id=refund.id)
    assert (again.amount, again.payment_intent_id, again.status) == (99, intent.id, "succeeded")
    assert [r.id for r in gateway.stripe_refund_list(payment_intent_id=intent.id)] == [refund.id]
    mirrored = gateway.stripe_payment_intent_retrieve(payment_intent_id=intent.id)
    assert (mirrored.amount_refunded, mirrored.payment_method.card_last4) == (99, "4242")


def test_create_customer_attach_a_test_method_and_take_a_confirmed_payment(peer):
    customer = gateway.stripe_customer_create(
        email="Buyer@Example.com", name="Buyer", idempotency_key="buy:1:customer"
    )
    assert (customer.email, customer.name) == ("buyer@example.com", "Buyer")
    method = gateway.stripe_payment_method_attach(
        payment_method_id="pm_card_visa", customer_id=customer.id, idempotency_key="buy:1:attach"
    )
    assert (method.customer_id, method.card_last4) == (customer.id, "4242")
    intent = gateway.stripe_payment_intent_create(
        amount=3100,
        currency="usd",
        customer_id=customer.id,
        payment_method_id=method.id,
        confirm=True,
        metadata={"order": 7},
        idempotency_key="buy:1:pi",
    )
    assert (intent.status, intent.amount_received, intent.metadata) == (
        "succeeded",
        3100,
        {"order": "7"},
    )
    assert intent.latest_charge_id
    again = gateway.stripe_payment_intent_retrieve(payment_intent_id=intent.id)
    assert (again.customer_id, again.payment_method_id) == (customer.id, method.id)


def test_an_unconfirmed_payment_intent_waits_for_confirmation(peer):
    customer, card = make_customer(peer.client, email="later@example.com")
    intent = gateway.stripe_payment_intent_create(
        amount=500,
        currency="usd",
        customer_id=customer.id,
        payment_method_id=card.id,
        idempotency_key="later:1:pi",
    )
    assert (intent.status, intent.amount_received, intent.latest_charge_id) == (
        "requires_confirmation",
        0,
        "",
    )


def test_missing_object_raises_resource_missing(peer):
    with pytest.raises(ResourceMissing):
        gateway.stripe_payment_intent_retrieve(payment_intent_id="pi_doesnotexist")


def test_a_rejected_key_raises_authentication_failed(peer, settings):
    settings.STRIPE_SECRET_KEY = "not_a_key"  # localstripe checks the key's shape
    with pytest.raises(AuthenticationFailed):
        gateway.stripe_customer_retrieve(customer_id="cus_x")
