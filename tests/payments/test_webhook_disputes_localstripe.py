"""Dispute webhooks delivered by the peer itself: the project's localstripe launcher signs and
POSTs charge.dispute.* events over real HTTP to our live server, and the mirror follows.

One event type is let through at a time: the live server's in-memory SQLite fails, rather
than waits, on concurrent writers, and the peer sends the events of one action at once.
Assertions are on outcomes (what the mirror and the payment say), not on how the handler
gets there.
"""

import pytest
import requests
import stripe

from payments.models import Dispute, Payment, WebhookEvent
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.webhook_support import PRIMARY_SECRET

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

HOOK_ID = "wh_backoffice_dispute_tests"


@pytest.fixture
def peer(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    return stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})


@pytest.fixture
def deliver(localstripe, live_server):
    """deliver(*types): from now on the peer POSTs only these event types to our server.
    Switched off afterwards (webhook registrations survive data resets)."""
    url = f"{live_server.url}/stripe/webhook/"

    let_earlier_events_pass()

    def only(*types):
        requests.post(
            f"{localstripe}/_config/webhooks/{HOOK_ID}",
            json={"url": url, "secret": PRIMARY_SECRET, "events": list(types)},
            timeout=5,
        ).raise_for_status()

    yield only
    stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)


def wait_for(condition, timeout=15.0):
    wait_until(
        condition,
        timeout=timeout,
        describe=lambda: f"events: {list(WebhookEvent.objects.values('type', 'status', 'error'))}",
    )


def dispute_row_in(status):
    return lambda: Dispute.objects.filter(status=status).exists()


def pay_with(peer, test_method):
    customer = peer.v1.customers.create(params={"email": "dora@example.com", "name": "Dora"})
    method = peer.v1.payment_methods.attach(test_method, params={"customer": customer.id})
    return peer.v1.payment_intents.create(
        params={
            "amount": 6100,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )


def test_a_dispute_opened_and_accepted_at_the_peer_reaches_the_mirror(peer, deliver):
    deliver("charge.dispute.created")
    intent = pay_with(peer, "pm_card_createDispute")
    at_peer = peer.v1.disputes.list(params={"payment_intent": intent.id}).data[0]

    wait_for(dispute_row_in("needs_response"))
    dispute = Dispute.objects.get()
    assert dispute.stripe_id == at_peer.id
    assert (dispute.amount, dispute.currency, dispute.reason) == (6100, "usd", "fraudulent")
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert payment.status == Payment.Status.DISPUTED
    event = WebhookEvent.objects.get(type="charge.dispute.created")
    assert (event.object_id, event.status) == (at_peer.id, "processed")

    deliver("charge.dispute.closed")
    peer.v1.disputes.close(at_peer.id)

    wait_for(dispute_row_in("lost"))
    assert WebhookEvent.objects.get(type="charge.dispute.closed").status == "processed"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED  # a lost dispute keeps the money gone


def test_a_won_dispute_delivered_by_the_peer_frees_the_payment(peer, deliver):
    deliver("charge.dispute.created")
    intent = pay_with(peer, "pm_card_createDispute")
    wait_for(dispute_row_in("needs_response"))
    dispute = Dispute.objects.get()

    deliver("charge.dispute.closed")
    peer.v1.disputes.update(
        dispute.stripe_id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )

    wait_for(dispute_row_in("won"))
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert payment.status == Payment.Status.SUCCEEDED
