"""The scheduled sync mirrors disputes from the peer (the project's localstripe launcher
serves them), in the compatibility mode too: a payment made with Stripe's dispute test card
reads as disputed and cannot be refunded; once the dispute is won it can again; a lost one
stays disputed. Outcomes only: what the mirror and the refund rules say."""

import time

import pytest

from payments import gateway
from payments.models import Dispute, Payment
from payments.sync_runs import stripe_sync
from refunds.rules import ERR_PAYMENT_DISPUTED, payment_blocked_reason
from tests.management.stripe_peer import make_customer, setup_peer

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def pay(peer, *, test_method: str, amount: int = 4000, currency: str = "usd"):
    customer, _ = make_customer(peer.client, email=f"s{time.monotonic_ns()}@example.com")
    method = peer.client.v1.payment_methods.attach(test_method, params={"customer": customer.id})
    return peer.client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )


def wait_until_closed(dispute_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = gateway.stripe_dispute_retrieve(dispute_id=dispute_id).status
        if status in ("won", "lost"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{dispute_id} still open after {timeout}s")


def test_the_sync_mirrors_a_dispute_and_the_payment_is_no_longer_refundable(peer, settings):
    assert settings.STRIPE_LOCALSTRIPE_COMPAT is True
    disputed = pay(peer, test_method="pm_card_createDispute", amount=4000)
    clean = pay(peer, test_method="pm_card_visa", amount=2500)

    report = stripe_sync()

    assert report.status == "succeeded"
    dispute = Dispute.objects.get()
    at_peer = peer.client.v1.disputes.list(params={"payment_intent": disputed.id}).data[0]
    assert dispute.stripe_id == at_peer.id
    assert dispute.payment.stripe_payment_intent_id == disputed.id
    assert (dispute.status, dispute.reason, dispute.amount, dispute.currency, dispute.fee) == (
        "needs_response",
        "fraudulent",
        4000,
        "usd",
        1500,
    )
    assert int(dispute.evidence_due_by.timestamp()) == at_peer.evidence_details.due_by
    payment = Payment.objects.get(stripe_payment_intent_id=disputed.id)
    assert payment.status == Payment.Status.DISPUTED
    assert payment_blocked_reason(payment) == ERR_PAYMENT_DISPUTED
    assert payment_blocked_reason(Payment.objects.get(stripe_payment_intent_id=clean.id)) == ""
    # A second run over the same window changes nothing.
    assert stripe_sync().objects_changed == 0


def test_an_inquiry_is_mirrored_as_a_warning_and_holds_the_payment(peer):
    intent = pay(peer, test_method="pm_card_createDisputeInquiry", amount=900, currency="eur")
    stripe_sync()
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.fee, dispute.currency) == ("warning_needs_response", 0, "eur")
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert payment.status == Payment.Status.DISPUTED


@pytest.mark.parametrize(
    ("evidence", "final", "refundable"),
    [("winning_evidence", "won", True), ("losing_evidence", "lost", False)],
)
def test_a_later_sync_brings_the_outcome_and_the_payment_follows(peer, evidence, final, refundable):
    intent = pay(peer, test_method="pm_card_createDispute", amount=3000)
    stripe_sync()
    dispute = Dispute.objects.get()
    gateway.stripe_dispute_update(
        dispute_id=dispute.stripe_id,
        evidence={"uncategorized_text": evidence},
        submit=True,
        idempotency_key=f"test:{dispute.stripe_id}:submit",
    )
    assert wait_until_closed(dispute.stripe_id) == final

    stripe_sync()  # the overlap window re-reads the dispute, created moments ago

    dispute.refresh_from_db()
    assert dispute.status == final
    assert dispute.closed_at is not None
    payment = Payment.objects.get(stripe_payment_intent_id=intent.id)
    assert (payment_blocked_reason(payment) == "") is refundable
