"""Refunds against a real (fake) Stripe: localstripe over HTTP. The refund must exist there
with the right amount, exactly once, and our rows must agree with it, also when the call
fails before or after Stripe acted."""

import pytest
import requests

from management.demo_refunds import demo_payment_create
from payments import gateway
from payments.exceptions import GatewayConnectionError, GatewayTimeout
from payments.models import Payment, Refund
from refunds.models import RefundRequest
from refunds.services import (
    RefundError,
    refund_request_approve,
    refund_request_create,
    refund_request_process,
    refund_requests_process_pending,
)

pytestmark = [pytest.mark.django_db, pytest.mark.stripe]


@pytest.fixture
def stripe_payment(localstripe, settings):
    """A confirmed 50.00 USD payment in localstripe and its local Payment row."""
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    payment = demo_payment_create(amount=5000, email="ada@example.com", name="Ada", key="t1")
    assert payment.stripe_status == "succeeded"
    return payment


def refunds_in_stripe(base, payment_intent_id):
    response = requests.get(
        f"{base}/v1/refunds",
        params={"payment_intent": payment_intent_id, "limit": 100},
        auth=("sk_test_localstripe", ""),
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["data"]


def test_approved_request_is_refunded_in_stripe_and_rows_agree(
    localstripe, stripe_payment, requester, approver, django_capture_on_commit_callbacks
):
    row = refund_request_create(payment=stripe_payment, amount=1999, acting_user=requester)
    with django_capture_on_commit_callbacks(execute=True):
        refund_request_approve(refund_request=row, acting_user=approver)
    row.refresh_from_db()
    stripe_payment.refresh_from_db()
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert len(in_stripe) == 1
    assert in_stripe[0]["amount"] == 1999
    assert in_stripe[0]["metadata"]["refund_request_id"] == str(row.pk)
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.stripe_refund_id == in_stripe[0]["id"]
    mirror = Refund.objects.get(stripe_id=in_stripe[0]["id"])
    assert (mirror.payment_id, mirror.amount) == (stripe_payment.pk, 1999)
    assert stripe_payment.amount_refunded == 1999
    assert stripe_payment.status == Payment.Status.PARTIALLY_REFUNDED


def test_partial_refunds_add_up_and_never_exceed_the_captured_amount(
    localstripe, stripe_payment, requester, approver
):
    for amount in (3000, 2000):
        row = refund_request_create(payment=stripe_payment, amount=amount, acting_user=requester)
        refund_request_approve(refund_request=row, acting_user=approver)
        assert refund_request_process(refund_request=row).status == "processed"
    with pytest.raises(RefundError):
        refund_request_create(payment=stripe_payment, amount=1, acting_user=requester)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == Payment.Status.REFUNDED
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert sorted(r["amount"] for r in in_stripe) == [2000, 3000]


def test_timeout_after_stripe_refunded_resumes_without_a_second_refund(
    localstripe, stripe_payment, requester, approver, monkeypatch
):
    real_create = gateway.stripe_refund_create

    def accepted_then_lost(**kwargs):
        real_create(**kwargs)  # Stripe makes the refund...
        raise GatewayTimeout()  # ...and the answer never arrives

    row = refund_request_create(payment=stripe_payment, amount=2500, acting_user=requester)
    refund_request_approve(refund_request=row, acting_user=approver)
    monkeypatch.setattr(gateway, "stripe_refund_create", accepted_then_lost)
    assert refund_request_process(refund_request=row).status == RefundRequest.Status.PROCESSING
    monkeypatch.setattr(gateway, "stripe_refund_create", real_create)
    assert refund_requests_process_pending()["processed"] == 1
    refund_requests_process_pending()  # and again: nothing left to do
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert [r["amount"] for r in in_stripe] == [2500]
    row.refresh_from_db()
    stripe_payment.refresh_from_db()
    assert row.stripe_refund_id == in_stripe[0]["id"]
    assert stripe_payment.amount_refunded == 2500


def test_connection_error_before_stripe_then_resume_refunds_once(
    localstripe, stripe_payment, requester, approver, monkeypatch
):
    real_create = gateway.stripe_refund_create

    def unreachable(**kwargs):
        raise GatewayConnectionError()

    row = refund_request_create(payment=stripe_payment, amount=700, acting_user=requester)
    refund_request_approve(refund_request=row, acting_user=approver)
    monkeypatch.setattr(gateway, "stripe_refund_create", unreachable)
    refund_request_process(refund_request=row)
    assert refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id) == []
    monkeypatch.setattr(gateway, "stripe_refund_create", real_create)
    refund_requests_process_pending()
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert [r["amount"] for r in in_stripe] == [700]
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
