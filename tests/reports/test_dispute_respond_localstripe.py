"""Save, submit and accept from the dispute page, end to end: the admin's POSTs through the
Django test client, our services and gateway, real HTTP to the project's localstripe
launcher (disputes and files, scripts/localstripe_ext.py), and the sync mirroring the result.

A payment with Stripe's dispute test card (4000000000000259) opens a `fraudulent` dispute;
submitted evidence whose `uncategorized_text` is `winning_evidence` wins it (Stripe's
documented test evidence)."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway
from payments.models import Dispute, DisputeResponse, Payment
from payments.services import dispute_response as service
from payments.sync_runs import stripe_sync
from tests.factories import UserFactory
from tests.management.stripe_peer import Fault, FaultProxy, make_customer, setup_peer
from tests.payments.test_dispute_response import PNG

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

DISPUTE_CARD = "4000000000000259"


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


@pytest.fixture
def staff_client(client, peer):
    user = UserFactory(username="disputes")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_dispute", "respond_dispute", "view_payment", "view_customer"]
        )
    )
    client.force_login(user)
    return client


def disputed_payment(peer) -> Dispute:
    """A payment with the dispute test card, synced into our mirror; its dispute row."""
    customer, _ = make_customer(
        peer.client, email=f"d{time.monotonic_ns()}@example.com", name="Ada Lovelace"
    )
    method = peer.client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": DISPUTE_CARD, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    peer.client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": 4200,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
        }
    )
    assert stripe_sync().status == "succeeded"
    return Dispute.objects.get(payment__stripe_payment_intent_id=intent.id)


def at_peer(dispute: Dispute):
    return gateway.stripe_dispute_retrieve(dispute_id=dispute.stripe_id)


def wait_for(dispute: Dispute, status: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while (current := at_peer(dispute)).status != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{dispute} is {current.status}, not {status}")
        time.sleep(0.1)
    return current


def test_save_then_submit_winning_evidence_from_the_page(peer, staff_client):
    dispute = disputed_payment(peer)
    assert (dispute.status, dispute.reason) == ("needs_response", "fraudulent")
    page = staff_client.get(reverse("admin:payments_dispute_change", args=[dispute.pk]))
    assert page.status_code == 200 and "Ada Lovelace" in page.content.decode()

    saved = staff_client.post(
        reverse("admin:payments_dispute_evidence", args=[dispute.pk]),
        {
            "customer_name": "Ada Lovelace",
            "uncategorized_text": "winning_evidence",
            "attach_receipt": "on",
            "attach_history": "on",
            "customer_communication": SimpleUploadedFile("chat.png", PNG, "image/png"),
        },
    )
    assert saved.status_code == 302
    staged = at_peer(dispute)
    assert staged.status == "needs_response" and staged.evidence_submission_count == 0
    assert staged.evidence["uncategorized_text"] == "winning_evidence"
    for field in ("receipt", "customer_communication", "uncategorized_file"):
        assert staged.evidence[field].startswith("file_")
    dispute.refresh_from_db()
    assert dispute.evidence == staged.evidence and dispute.has_evidence

    submit_url = reverse("admin:payments_dispute_submit", args=[dispute.pk])
    confirmation = staff_client.post(submit_url)
    assert "winning_evidence" in confirmation.content.decode()
    assert at_peer(dispute).evidence_submission_count == 0  # nothing sent by the confirmation
    assert staff_client.post(submit_url, {"confirm": "1"}).status_code == 302
    # A second confirmation (double click) is refused here: one submission at Stripe.
    again = staff_client.post(submit_url, {"confirm": "1"}, follow=True)
    assert "already submitted" in again.content.decode()
    won = wait_for(dispute, "won")
    assert won.evidence_submission_count == 1

    responses = DisputeResponse.objects.order_by("id")
    assert [(r.kind, r.status) for r in responses] == [
        ("save", "succeeded"),
        ("submit", "succeeded"),
    ]
    assert list(
        AdminAction.objects.filter(target_type="payments.dispute", target_id=str(dispute.pk))
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["dispute.evidence_save", "dispute.evidence_submit"]
    # The decision arrives later (a webhook or the sync): the mirror converges on it.
    assert stripe_sync().status == "succeeded"
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.WON
    assert dispute.payment.status != Payment.Status.DISPUTED


def test_accept_from_the_page_closes_the_dispute(peer, staff_client):
    dispute = disputed_payment(peer)
    url = reverse("admin:payments_dispute_accept", args=[dispute.pk])
    assert "Accept and lose $42.00" in staff_client.post(url).content.decode()
    assert at_peer(dispute).status == "needs_response"
    assert staff_client.post(url, {"confirm": "1"}).status_code == 302
    assert at_peer(dispute).status == "lost"
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.LOST and dispute.closed_at is not None
    assert dispute.payment.status == Payment.Status.DISPUTED  # a lost dispute stays on it
    # Closed: the page offers nothing more and a forged POST is refused.
    refused = staff_client.post(url, {"confirm": "1"}, follow=True)
    assert "is closed (lost)" in refused.content.decode()
    assert DisputeResponse.objects.filter(kind="accept").count() == 1


def test_a_lost_answer_is_resent_with_the_same_key_and_submits_once(peer, staff_client, settings):
    """Stripe takes the submit but the answer is lost (no retries left): the response stays
    open; the next click re-sends the same key, Stripe replays its first answer."""
    dispute = disputed_payment(peer)
    staff = UserFactory(username="senior")
    staff.user_permissions.add(Permission.objects.get(codename="respond_dispute"))
    settings.STRIPE_MAX_RETRIES = 0
    with FaultProxy(peer.url) as proxy:
        settings.STRIPE_API_BASE = proxy.url
        path = f"/v1/disputes/{dispute.stripe_id}"
        proxy.add(Fault("POST", path, action="drop_after_forward", times=1))
        first = service.dispute_evidence_submit(
            dispute=dispute, text={"uncategorized_text": "winning_evidence"}, acting_user=staff
        )
        assert not first.succeeded and first.message == service.MESSAGE_UNKNOWN
        assert DisputeResponse.objects.get().status == DisputeResponse.Status.UNKNOWN
        DisputeResponse.objects.update(
            last_attempt_at=timezone.now() - service.IN_FLIGHT_WINDOW - timedelta(seconds=1)
        )
        again = service.dispute_evidence_submit(dispute=dispute, acting_user=staff)
        assert again.resumed
        posts = proxy.requests_to("POST", path)
        assert [p.idempotency_key for p in posts] == [first.idempotency_key] * 2
        assert [p.answered for p in posts] == ["dropped", "replayed 200"]
    assert DisputeResponse.objects.get().status == DisputeResponse.Status.SUCCEEDED
    assert wait_for(dispute, "won").evidence_submission_count == 1


def test_a_file_stripe_would_refuse_never_leaves(peer, staff_client):
    dispute = disputed_payment(peer)
    response = staff_client.post(
        reverse("admin:payments_dispute_evidence", args=[dispute.pk]),
        {"receipt": SimpleUploadedFile("receipt.pdf", b"PK\x03\x04 not a pdf", "application/pdf")},
    )
    assert response.status_code == 400
    assert at_peer(dispute).evidence == {}
    assert not DisputeResponse.objects.exists()
