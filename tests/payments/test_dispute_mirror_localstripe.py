"""The dispute mirror against the peer (the project's localstripe launcher serves disputes):
the webhook handler re-reads the dispute from the peer over HTTP, so an old event processed
after the sync stored the outcome moves nothing back (the issue's first bug); and a dispute
the peer serves above its payment's amount is refused with the reason."""

import time

import pytest

from payments import gateway
from payments.models import Dispute, Payment, WebhookEvent
from payments.sync_runs import stripe_sync
from payments.validation import ERR_ABOVE_PAYMENT
from payments.webhooks import ERROR_INVALID_OBJECT
from tests.management.stripe_peer import make_customer, setup_peer
from tests.payments.webhook_support import make_event, post_event

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def pay_disputed(peer, amount=4000, test_method="pm_card_createDispute"):
    customer, _ = make_customer(peer.client, email=f"m{time.monotonic_ns()}@example.com")
    method = peer.client.v1.payment_methods.attach(test_method, params={"customer": customer.id})
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )
    disputes = peer.client.v1.disputes.list(params={"payment_intent": intent.id}).data
    return intent, disputes[0] if disputes else None


def test_old_dispute_events_after_the_sync_stored_lost_move_nothing_back(peer, client):
    intent, at_peer = pay_disputed(peer)
    peer.client.v1.disputes.close(at_peer.id)  # accepted: lost at the peer
    stripe_sync()
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert (Dispute.objects.get().status, payment.status) == ("lost", Payment.Status.DISPUTED)
    net_after_loss = payment.net

    # The peer's own dispute events, newest first, then two stale Stripe-shaped snapshots.
    events = [
        e.to_dict()
        for e in peer.client.v1.events.list(params={"limit": 100}).data
        if e.type.startswith("charge.dispute.")
    ]
    assert {e["type"] for e in events} >= {"charge.dispute.created", "charge.dispute.closed"}
    stale = {"id": at_peer.id, "object": "dispute", "amount": 4000, "currency": "usd"}
    events += [
        make_event("charge.dispute.updated", {**stale, "status": "under_review"}),
        make_event("charge.dispute.created", {**stale, "status": "needs_response"}),
    ]
    for event in events:
        assert post_event(client, event).status_code == 200

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    dispute = Dispute.objects.get()
    payment.refresh_from_db()
    assert (dispute.status, dispute.amount, dispute.fee) == ("lost", 4000, 1500)
    assert (payment.status, payment.net) == (Payment.Status.DISPUTED, net_after_loss)


def test_a_dispute_above_its_payment_at_the_peer_fails_its_event(peer, client, localstripe):
    """The peer opens disputes of any amount on a charge (its test helper): one above the
    charge is refused when its event is processed, and the mirror keeps nothing of it."""
    import requests

    intent, _ = pay_disputed(peer, amount=1000, test_method="pm_card_visa")
    stripe_sync()
    charge_id = intent.latest_charge.id  # localstripe expands it
    response = requests.post(
        f"{localstripe}/_config/charges/{charge_id}/dispute",
        data={"amount": 1500, "reason": "general"},
        timeout=5,
    )
    response.raise_for_status()
    too_big = response.json()["id"]
    assert gateway.stripe_dispute_retrieve(dispute_id=too_big).amount == 1500

    post_event(client, make_event("charge.dispute.created", {"id": too_big, "object": "dispute"}))

    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error == ERROR_INVALID_OBJECT.format(
        error=ERR_ABOVE_PAYMENT.format(
            kind="dispute", id=too_big, amount="$15.00", payment_amount="$10.00"
        )
    )
    assert not Dispute.objects.exists()
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert payment.status == Payment.Status.SUCCEEDED
