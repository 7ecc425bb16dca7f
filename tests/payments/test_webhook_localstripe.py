"""Webhooks against localstripe as a real HTTP peer.

localstripe signs and POSTs customer.* and payment_intent.* events itself; it has no
charge, refund, payment_method or dispute events, so those are Stripe-shaped payloads about
the real localstripe objects, signed here with the real scheme and POSTed to the endpoint.
Handlers re-read payment intents, refunds, customers and payment methods from localstripe.
Every delivery here is real HTTP to pytest-django's live_server.
"""

import random
import time

import pytest
import requests
import stripe
from django.db.models import PROTECT

from payments.models import Customer, Dispute, Payment, PaymentMethod, Refund, WebhookEvent
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.webhook_support import PRIMARY_SECRET, make_event, post_http

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

HOOK_ID = "wh_backoffice_tests"


@pytest.fixture
def peer(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    return stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})


@pytest.fixture
def delivering(localstripe, live_server):
    """localstripe POSTs its events to our live server; switched off afterwards (its webhook
    registrations survive data resets)."""
    url = f"{live_server.url}/stripe/webhook/"
    let_earlier_events_pass()
    response = requests.post(
        f"{localstripe}/_config/webhooks/{HOOK_ID}",
        json={"url": url, "secret": PRIMARY_SECRET},
        timeout=5,
    )
    response.raise_for_status()
    yield
    stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)


def card(peer, number="4242424242424242", customer=None):
    method = peer.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    if customer:
        peer.v1.payment_methods.attach(method.id, params={"customer": customer})
    return method


def wait_for(condition, timeout=15.0):
    wait_until(
        condition,
        timeout=timeout,
        describe=lambda: f"events: {list(WebhookEvent.objects.values('type', 'status'))}",
    )


def processed(event_type):
    return lambda: WebhookEvent.objects.filter(type=event_type, status="processed").exists()


def test_localstripe_delivers_signed_events_over_http_and_we_mirror_them(peer, delivering):
    # One object at a time: the live server's in-memory SQLite (shared cache) fails, rather
    # than waits, on concurrent writers; PostgreSQL handles concurrent deliveries (see
    # test_webhook_postgres.py).
    customer = peer.v1.customers.create(params={"email": "Ada@Example.com", "name": "Ada"})
    wait_for(processed("customer.created"))
    method = card(peer, customer=customer.id)
    intent = peer.v1.payment_intents.create(
        params={
            "amount": 4200,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"
    wait_for(processed("payment_intent.succeeded"))
    event = WebhookEvent.objects.get(type="payment_intent.succeeded")
    assert event.object_id == intent.id
    assert event.attempts == 1
    mirrored = Customer.objects.get(stripe_id=customer.id)
    assert (mirrored.email, mirrored.name) == ("ada@example.com", "Ada")
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert payment.customer == mirrored
    assert (payment.amount, payment.currency, payment.status) == (4200, "eur", "succeeded")
    assert payment.stripe_charge_id == intent.latest_charge.id
    assert payment.payment_method.stripe_id == method.id


def build_history(peer):
    """A customer with a default card; a payment partly refunded; a declined payment.
    Returns the events a real Stripe account would send about them."""
    customer = peer.v1.customers.create(params={"email": "grace@example.com", "name": "Grace"})
    good = card(peer, customer=customer.id)
    peer.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": good.id}}
    )
    paid = peer.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": good.id,
            "confirm": True,
        }
    )
    refund = peer.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1500})
    bad = card(peer, number="4000000000000341", customer=customer.id)
    with pytest.raises(stripe.CardError):
        peer.v1.payment_intents.create(
            params={
                "amount": 700,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": bad.id,
                "confirm": True,
            }
        )
    # localstripe's own events (customer.*, payment_intent.*), as it would deliver them ...
    events = [e.to_dict() for e in peer.v1.events.list(params={"limit": 100}).data]
    assert {e["type"] for e in events} >= {
        "customer.created",
        "customer.updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
    }
    # ... plus the types it does not send, shaped like Stripe's, about its real objects.
    charge = {"id": paid.latest_charge.id, "object": "charge", "payment_intent": paid.id}
    refund_object = {"id": refund.id, "object": "refund", "payment_intent": paid.id}
    now = int(time.time())
    events += [
        make_event("payment_method.attached", {"id": good.id, "object": "payment_method"}),
        make_event("payment_method.attached", {"id": bad.id, "object": "payment_method"}),
        make_event("charge.succeeded", {**charge, "status": "succeeded"}),
        make_event("refund.created", refund_object),
        make_event("charge.refund.updated", refund_object),
        make_event("charge.refunded", {**charge, "amount_refunded": 1500}),
        make_event(
            "charge.dispute.created",
            {
                "id": "du_grace",
                "object": "dispute",
                "amount": 3500,
                "currency": "usd",
                "charge": paid.latest_charge.id,
                "payment_intent": paid.id,
                "status": "needs_response",
                "reason": "fraudulent",
                "created": now,
            },
            created=now - 30,
        ),
        make_event(
            "charge.dispute.closed",
            {
                "id": "du_grace",
                "object": "dispute",
                "amount": 3500,
                "currency": "usd",
                "charge": paid.latest_charge.id,
                "payment_intent": paid.id,
                "status": "won",
                "reason": "fraudulent",
                "created": now,
            },
            created=now - 10,
        ),
    ]
    return events, {"customer": customer, "good": good, "bad": bad, "paid": paid, "refund": refund}


def local_state():
    """Everything the handlers write, as comparable values (no local pks or timestamps)."""
    return {
        "customers": sorted(Customer.objects.values_list("stripe_id", "email", "name")),
        "methods": sorted(
            PaymentMethod.objects.values_list(
                "stripe_id", "customer__stripe_id", "is_default", "card_last4"
            )
        ),
        "payments": sorted(
            Payment.objects.values_list(
                "stripe_payment_intent_id",
                "customer__stripe_id",
                "payment_method__stripe_id",
                "status",
                "stripe_status",
                "amount",
                "amount_refunded",
                "stripe_fee",
                "platform_fee",
                "net",
                "stripe_charge_id",
                "failure_code",
            )
        ),
        "refunds": sorted(Refund.objects.values_list("stripe_id", "status", "amount")),
        "disputes": sorted(Dispute.objects.values_list("stripe_id", "status", "amount")),
    }


def reset_local():
    WebhookEvent.objects.all().delete()
    # Rows other apps hang on payments (refunds, disputes, receipts ...) protect them.
    for relation in Payment._meta.related_objects:
        if relation.on_delete is PROTECT:
            relation.related_model.objects.all().delete()
    Payment.objects.all().delete()
    PaymentMethod.objects.all().delete()
    Customer.objects.all().delete()


@pytest.fixture
def dispute_at_stripe(monkeypatch):
    """The dispute handler re-reads the dispute. The history's dispute is a Stripe-shaped
    payload about a dispute the peer does not hold (the peer's own disputes are tested in
    test_webhook_disputes_localstripe.py), so the re-read answers with it as Stripe would
    hold it now (closed, won), through the gateway's own mapper, whatever event is processed."""
    from payments import gateway, webhooks

    def retrieve(*, dispute_id, client=None):
        event = next(
            e
            for e in retrieve.events
            if e["type"] == "charge.dispute.closed" and e["data"]["object"]["id"] == dispute_id
        )
        return gateway.dispute_from_stripe(event["data"]["object"])

    retrieve.events = []
    monkeypatch.setattr(webhooks.gateway, "stripe_dispute_retrieve", retrieve)
    return retrieve


def test_a_payments_events_in_any_order_converge_to_the_same_state(
    peer, live_server, dispute_at_stripe
):
    events, objects = build_history(peer)
    dispute_at_stripe.events = events
    rng = random.Random(20261121)
    orders = [list(events), list(reversed(events))]
    orders += [rng.sample(events, len(events)) for _ in range(4)]
    finals = []
    for order in orders:
        reset_local()
        for event in order:
            assert post_http(live_server.url, event).status_code == 200
        statuses = dict(WebhookEvent.objects.values_list("stripe_id", "status"))
        assert set(statuses.values()) == {"processed"}, statuses
        finals.append(local_state())
    assert all(final == finals[0] for final in finals)

    # And that state is localstripe's, field by field.
    state = finals[0]
    paid, customer = objects["paid"], objects["customer"]
    assert state["customers"] == [(customer.id, "grace@example.com", "Grace")]
    assert sorted(state["methods"]) == sorted(
        [
            (objects["good"].id, customer.id, True, "4242"),
            (objects["bad"].id, customer.id, False, "0341"),
        ]
    )
    by_pi = {row[0]: row for row in state["payments"]}
    assert by_pi[paid.id][3:7] == ("partially_refunded", "succeeded", 5000, 1500)
    assert by_pi[paid.id][2] == objects["good"].id
    declined = next(row for pi, row in by_pi.items() if pi != paid.id)
    assert declined[3] == "failed" and declined[5] == 700 and declined[11] == "card_declined"
    assert state["refunds"] == [(objects["refund"].id, "succeeded", 1500)]
    assert state["disputes"] == [("du_grace", "won", 3500)]


def test_duplicate_payment_event_has_one_effect(peer, live_server):
    events, objects = build_history(peer)
    succeeded = next(e for e in events if e["type"] == "payment_intent.succeeded")
    answers = [post_http(live_server.url, succeeded).json()["duplicate"] for _ in range(5)]
    assert answers == [False, True, True, True, True]
    payment = Payment.objects.get(stripe_payment_intent_id=objects["paid"].id)
    assert payment.history.count() == 1  # created once, never rewritten


def test_customer_deleted_at_stripe_keeps_our_row(peer, live_server):
    customer = peer.v1.customers.create(params={"email": "gone@example.com"})
    post_http(live_server.url, make_event("customer.created", {"id": customer.id}))
    peer.v1.customers.delete(customer.id)
    post_http(live_server.url, make_event("customer.deleted", {"id": customer.id, "deleted": True}))
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Customer.objects.filter(stripe_id=customer.id).exists()


def test_payment_method_detached_at_stripe_loses_its_customer(peer, live_server):
    customer = peer.v1.customers.create(params={"email": "pm@example.com"})
    method = card(peer, customer=customer.id)
    post_http(live_server.url, make_event("payment_method.attached", {"id": method.id}))
    assert PaymentMethod.objects.get(stripe_id=method.id).customer.stripe_id == customer.id
    peer.v1.payment_methods.detach(method.id)
    post_http(live_server.url, make_event("payment_method.detached", {"id": method.id}))
    assert PaymentMethod.objects.get(stripe_id=method.id).customer is None
