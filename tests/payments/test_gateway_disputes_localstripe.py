"""Dispute and file calls of the gateway against the project's localstripe launcher over real
HTTP (scripts/localstripe_ext.py): Stripe's dispute test cards open disputes, evidence is
staged and submitted, Stripe's test evidence decides the outcome, accepting closes it, files
upload to the files address, and the compatibility mode lists disputes like any list."""

import time

import pytest
import requests

from payments import gateway
from payments.exceptions import InvalidRequest, ResourceMissing
from tests.management.stripe_peer import make_customer, setup_peer

pytestmark = pytest.mark.stripe

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def disputed_payment(peer, *, test_method="pm_card_createDispute", amount=5000, currency="usd"):
    """A payment with one of Stripe's dispute test cards, and the dispute it opened."""
    customer, _ = make_customer(peer.client, email=f"d{time.monotonic_ns()}@example.com")
    method = peer.client.v1.payment_methods.attach(test_method, params={"customer": customer.id})
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )
    (page,) = gateway.stripe_dispute_list_pages()
    (dispute,) = [d for d in page.items if d.payment_intent_id == intent.id]
    assert gateway.stripe_dispute_list(payment_intent_id=intent.id) == [dispute]
    return intent, dispute


def wait_for_status(dispute_id, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        current = gateway.stripe_dispute_retrieve(dispute_id=dispute_id)
        if current.status == status or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def test_the_dispute_test_card_opens_a_fraudulent_dispute_with_its_fee(peer):
    intent, dispute = disputed_payment(peer, amount=5000)
    assert (dispute.status, dispute.reason, dispute.amount, dispute.currency) == (
        "needs_response",
        "fraudulent",
        5000,
        "usd",
    )
    assert dispute.charge_id and dispute.charge_id.startswith("ch_")
    assert dispute.id.startswith("du_")
    assert dispute.fee == 1500  # Stripe's dispute fee, from the withdrawal's transaction
    assert dispute.evidence_due_by and dispute.evidence_due_by > dispute.created
    assert (dispute.evidence, dispute.has_evidence, dispute.evidence_submission_count) == (
        {},
        False,
        0,
    )
    payment = gateway.stripe_payment_intent_retrieve(payment_intent_id=intent.id)
    assert payment.charge_disputed is True


def test_the_inquiry_card_opens_an_inquiry_without_withdrawing_funds(peer):
    _, dispute = disputed_payment(peer, test_method="pm_card_createDisputeInquiry")
    assert (dispute.status, dispute.fee) == ("warning_needs_response", 0)


def test_saving_evidence_stages_it_and_submitting_sends_it_once(peer):
    _, dispute = disputed_payment(peer)
    receipt = gateway.stripe_file_create(
        content=PDF, filename="receipt.pdf", idempotency_key="dispute:1:file:receipt"
    )
    assert (receipt.type, receipt.size, receipt.filename) == ("pdf", len(PDF), "receipt.pdf")
    saved = gateway.stripe_dispute_update(
        dispute_id=dispute.id,
        evidence={"customer_name": "Ada Lovelace", "receipt": receipt.id},
        submit=False,
        idempotency_key="dispute:1:save:1",
    )
    assert saved.status == "needs_response"
    assert saved.evidence == {"customer_name": "Ada Lovelace", "receipt": receipt.id}
    assert (saved.has_evidence, saved.evidence_submission_count) == (True, 0)

    submitted = gateway.stripe_dispute_update(
        dispute_id=dispute.id,
        evidence={"product_description": "Course: Python for finance"},
        submit=True,
        idempotency_key="dispute:1:submit",
    )
    assert (submitted.status, submitted.evidence_submission_count) == ("under_review", 1)
    assert submitted.evidence["customer_name"] == "Ada Lovelace"  # staged fields kept
    with pytest.raises(InvalidRequest):
        gateway.stripe_dispute_update(
            dispute_id=dispute.id,
            evidence={"customer_name": "Someone else"},
            submit=True,
            idempotency_key="dispute:1:submit-again",
        )


@pytest.mark.parametrize(
    ("text", "final"), [("winning_evidence", "won"), ("losing_evidence", "lost")]
)
def test_stripes_test_evidence_decides_a_submitted_dispute(peer, text, final):
    _, dispute = disputed_payment(peer, amount=3000)
    submitted = gateway.stripe_dispute_update(
        dispute_id=dispute.id,
        evidence={"uncategorized_text": text},
        submit=True,
        idempotency_key=f"dispute:{text}",
    )
    assert submitted.status == "under_review"
    closed = wait_for_status(dispute.id, final)
    assert closed.status == final
    # Stripe keeps the dispute fee either way; a won dispute gets its amount back.
    assert closed.fee == 1500


def test_accepting_closes_as_lost_and_an_inquiry_as_warning_closed(peer):
    _, dispute = disputed_payment(peer)
    _, inquiry = disputed_payment(peer, test_method="pm_card_createDisputeInquiry")
    lost = gateway.stripe_dispute_close(dispute_id=dispute.id, idempotency_key="accept:1")
    closed = gateway.stripe_dispute_close(dispute_id=inquiry.id, idempotency_key="accept:2")
    assert (lost.status, closed.status) == ("lost", "warning_closed")
    with pytest.raises(InvalidRequest):
        gateway.stripe_dispute_update(
            dispute_id=dispute.id,
            evidence={"customer_name": "Late"},
            submit=False,
            idempotency_key="late",
        )
    with pytest.raises(InvalidRequest):
        gateway.stripe_dispute_close(dispute_id=dispute.id, idempotency_key="accept:3")


def test_the_same_idempotency_key_answers_the_same_and_another_request_is_refused(peer):
    first = gateway.stripe_file_create(content=PDF, filename="a.pdf", idempotency_key="file:k")
    again = gateway.stripe_file_create(content=PDF, filename="a.pdf", idempotency_key="file:k")
    assert again.id == first.id
    _, dispute = disputed_payment(peer)
    gateway.stripe_dispute_close(dispute_id=dispute.id, idempotency_key="close:k")
    # A retried accept with the same key gets the first answer, not "already closed".
    assert gateway.stripe_dispute_close(dispute_id=dispute.id, idempotency_key="close:k").status
    with pytest.raises(InvalidRequest):
        gateway.stripe_file_create(content=PDF + b"x", filename="a.pdf", idempotency_key="file:k")


def test_evidence_refuses_unknown_fields_files_and_kinds(peer):
    _, dispute = disputed_payment(peer)
    with pytest.raises(InvalidRequest):
        gateway.stripe_dispute_update(
            dispute_id=dispute.id,
            evidence={"favourite_colour": "red"},
            submit=False,
            idempotency_key="bad:1",
        )
    with pytest.raises(InvalidRequest):
        gateway.stripe_dispute_update(
            dispute_id=dispute.id,
            evidence={"receipt": "file_missing"},
            submit=False,
            idempotency_key="bad:2",
        )
    with pytest.raises(InvalidRequest):
        gateway.stripe_file_create(
            content=b"plain text", filename="notes.txt", idempotency_key="bad:3"
        )
    with pytest.raises(ResourceMissing):
        gateway.stripe_dispute_retrieve(dispute_id="du_missing")


def test_lists_filter_by_charge_intent_and_created_and_page_newest_first(peer):
    first_intent, first = disputed_payment(peer)
    _, second = disputed_payment(peer)
    listed = peer.client.v1.disputes.list(params={"payment_intent": first_intent.id}).data
    assert [d.id for d in listed] == [first.id]
    assert [d.id for d in peer.client.v1.disputes.list(params={"charge": second.charge_id})] == [
        second.id
    ]
    everything = peer.client.v1.disputes.list(params={"limit": 1})
    assert (everything.data[0].id, everything.has_more) == (second.id, True)
    rest = peer.client.v1.disputes.list(params={"limit": 1, "starting_after": second.id})
    assert [d.id for d in rest.data] == [first.id]
    created = int(first.created.timestamp())
    assert peer.client.v1.disputes.list(params={"created": {"lt": created}}).data == []
    gte = peer.client.v1.disputes.list(params={"created": {"gte": created}}).data
    assert {d.id for d in gte} == {first.id, second.id}


def test_dispute_events_reach_the_event_list_and_refunds_are_refused(peer):
    intent, dispute = disputed_payment(peer)
    gateway.stripe_dispute_close(dispute_id=dispute.id, idempotency_key="close")
    types = [
        e.type
        for e in peer.client.v1.events.list(params={"limit": 100}).data
        if e.type.startswith("charge.dispute.")
    ]
    assert types == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    ]
    with pytest.raises(InvalidRequest) as info:
        gateway.stripe_refund_create(
            payment_intent_id=intent.id, amount=100, idempotency_key="refund:disputed"
        )
    assert info.value.stripe_code == "charge_disputed"


def test_config_helpers_open_a_dispute_on_any_charge_and_move_its_deadline(peer):
    customer, method = make_customer(peer.client, email="cfg@example.com")
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )
    charge_id = intent.latest_charge["id"]
    opened = requests.post(
        f"{peer.url}/_config/charges/{charge_id}/dispute",
        data={"reason": "product_not_received", "evidence_due_by": "1900000000"},
        timeout=5,
    )
    opened.raise_for_status()
    dispute = gateway.stripe_dispute_retrieve(dispute_id=opened.json()["id"])
    assert (dispute.reason, dispute.currency, int(dispute.evidence_due_by.timestamp())) == (
        "product_not_received",
        "eur",
        1_900_000_000,
    )
    moved = requests.post(
        f"{peer.url}/_config/disputes/{dispute.id}",
        data={"evidence_due_by": "1900086400"},
        timeout=5,
    )
    moved.raise_for_status()
    due = gateway.stripe_dispute_retrieve(dispute_id=dispute.id).evidence_due_by
    assert int(due.timestamp()) == 1_900_086_400


def test_an_inquiry_is_closed_by_winning_evidence_and_escalated_by_losing_evidence(peer):
    _, won = disputed_payment(peer, test_method="pm_card_createDisputeInquiry")
    _, escalated = disputed_payment(peer, test_method="pm_card_createDisputeInquiry")
    for dispute, text in ((won, "winning_evidence"), (escalated, "losing_evidence")):
        submitted = gateway.stripe_dispute_update(
            dispute_id=dispute.id,
            evidence={"uncategorized_text": text},
            submit=True,
            idempotency_key=f"inquiry:{dispute.id}",
        )
        assert submitted.status == "warning_under_review"
    assert wait_for_status(won.id, "warning_closed").status == "warning_closed"
    chargeback = wait_for_status(escalated.id, "needs_response")
    # The bank turned the inquiry into a chargeback: funds and the fee are withdrawn now.
    assert (chargeback.status, chargeback.fee) == ("needs_response", 1500)
