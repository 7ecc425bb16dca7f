"""Refund safety in every path: processing re-checks the payment under the lock (a dispute
after approval is never refunded), pending requests reserve their amount, and refunds Stripe
reports as pending count against what is left."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.exceptions import GatewayConnectionError
from payments.gateway import StripeDispute
from payments.models import Payment, Refund
from payments.sync import upsert_disputes
from refunds import rules, services
from refunds.models import RefundRequest
from refunds.selectors import payment_processed_amount, payment_refundability
from refunds.services import (
    RefundError,
    refund_request_approve,
    refund_request_create,
    refund_request_process,
    refund_requests_process_pending,
)
from tests.factories import PaymentFactory, RefundFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db


def dispute_arrives(payment: Payment, *, status: str = "needs_response") -> None:
    """A dispute through the same upsert the webhooks and the sync use."""
    upsert_disputes(
        [
            StripeDispute(
                id=f"dp_{payment.pk}",
                charge_id=payment.stripe_charge_id,
                payment_intent_id=payment.stripe_payment_intent_id,
                amount=payment.amount,
                currency=payment.currency,
                status=status,
                created=timezone.now(),
                reason="fraudulent",
            )
        ]
    )


def _approved(payment, amount, approver):
    """An approved request whose processing has not run yet (on_commit does not fire inside
    the test's transaction)."""
    row = RefundRequestFactory(payment=payment, amount=amount)
    return refund_request_approve(refund_request=row, acting_user=approver)


# --- 1. processing re-checks the payment under the lock ------------------------------------------


def test_a_dispute_after_approval_cancels_processing_without_a_stripe_call(approver, fake_stripe):
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    dispute_arrives(payment)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED

    result = refund_request_process(refund_request=row)

    assert fake_stripe.create_calls == 0
    assert fake_stripe.list_calls == 0
    assert result.status == RefundRequest.Status.CANCELED
    expected = rules.CANCELED_BEFORE_STRIPE.format(reason=rules.ERR_PAYMENT_DISPUTED)
    assert result.failure_message == expected
    row.refresh_from_db()
    assert (row.status, row.failure_message, row.stripe_refund_id) == ("canceled", expected, "")
    payment.refresh_from_db()
    assert payment.amount_refunded == 0
    assert not Refund.objects.exists()
    audit = AdminAction.objects.get(action=services.AUDIT_CANCEL)
    assert (audit.target_id, audit.reason, audit.amount) == (str(row.pk), expected, 2000)
    # The canceled amount no longer counts as in flight.
    assert payment_refundability(payment=payment).in_flight == 0
    # And a second run leaves it alone.
    assert refund_request_process(refund_request=row).status == RefundRequest.Status.CANCELED
    assert fake_stripe.create_calls == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": Payment.Status.FAILED}, rules.ERR_PAYMENT_FAILED),
        ({"status": Payment.Status.CANCELED}, rules.ERR_PAYMENT_CANCELED),
        (
            {"status": Payment.Status.REFUNDED, "amount_refunded": 5000},
            rules.ERR_PAYMENT_FULLY_REFUNDED,
        ),
    ],
)
def test_a_payment_no_longer_refundable_is_not_refunded(approver, fake_stripe, changes, reason):
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    Payment.objects.filter(pk=payment.pk).update(**changes)
    result = refund_request_process(refund_request=row)
    assert fake_stripe.create_calls == 0
    assert result.status == RefundRequest.Status.CANCELED
    assert result.failure_message == rules.CANCELED_BEFORE_STRIPE.format(reason=reason)


def test_a_refund_made_outside_since_approval_leaves_too_little(approver, fake_stripe):
    """Someone refunded 40.00 in the Stripe dashboard after 20.00 was approved: processing
    would take the payment past what was captured, so it stops."""
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    RefundFactory(payment=payment, amount=4000)
    Payment.objects.filter(pk=payment.pk).update(
        amount_refunded=4000, status=Payment.Status.PARTIALLY_REFUNDED
    )
    result = refund_request_process(refund_request=row)
    assert fake_stripe.create_calls == 0
    assert result.status == RefundRequest.Status.CANCELED
    reason = rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(amount="$20.00", refundable="$10.00")
    assert result.failure_message == rules.CANCELED_BEFORE_STRIPE.format(reason=reason)


def test_a_won_dispute_leaves_the_refund_possible(approver, fake_stripe):
    """The re-check reads the payment as it is: a dispute already closed in the merchant's
    favour blocks nothing."""
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    dispute_arrives(payment, status="won")
    assert refund_request_process(refund_request=row).status == RefundRequest.Status.PROCESSED
    assert fake_stripe.create_calls == 1


def test_a_resumed_attempt_that_finds_nothing_in_stripe_rechecks(approver, fake_stripe):
    """The first attempt never reached Stripe; the payment is disputed before the resume. The
    resume looks in Stripe first, finds nothing, checks again and cancels."""
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    fake_stripe.fail_before = GatewayConnectionError()
    assert refund_request_process(refund_request=row).status == RefundRequest.Status.PROCESSING
    fake_stripe.fail_before = None
    dispute_arrives(payment)
    assert refund_requests_process_pending() == {
        "candidates": 1,
        "processed": 0,
        "failed": 0,
        "canceled": 1,
        "still_processing": 0,
    }
    assert fake_stripe.list_calls == 1
    assert fake_stripe.create_calls == 1  # only the first, refused attempt
    assert fake_stripe.refunds == []
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.CANCELED
    assert row.failure_message == rules.CANCELED_BEFORE_STRIPE.format(
        reason=rules.ERR_PAYMENT_DISPUTED
    )


def test_a_resumed_attempt_records_a_refund_stripe_already_made_even_if_disputed_since(
    approver, fake_stripe, settings
):
    """The money left before the dispute: the request records it (never 'canceled' while the
    refund exists in Stripe)."""
    settings.REFUND_PROCESSING_LEASE_SECONDS = 60
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    claimed = services._claim(row.pk)
    fake_stripe.stripe_refund_create(
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=2000,
        idempotency_key=claimed.idempotency_key,
        metadata={"refund_request_id": row.pk, "idempotency_key": claimed.idempotency_key},
    )
    dispute_arrives(payment)
    RefundRequest.objects.filter(pk=row.pk).update(
        processing_started_at=timezone.now() - timedelta(seconds=61)
    )
    assert refund_requests_process_pending()["processed"] == 1
    assert fake_stripe.create_calls == 1
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.stripe_refund_id == fake_stripe.refunds[0].id


def test_the_queue_and_the_request_show_why_processing_stopped(admin_client, approver, fake_stripe):
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 2000, approver)
    dispute_arrives(payment)
    refund_request_process(refund_request=row)
    queue = admin_client.get(
        reverse("admin:refunds_refundrequest_changelist"), {"status__exact": "canceled"}
    )
    assert queue.status_code == 200
    body = queue.content.decode().replace("&#x27;", "'")
    assert "Not refunded: This payment is disputed" in body
    detail = admin_client.get(reverse("admin:refunds_refundrequest_change", args=[row.pk]))
    assert rules.CANCELED_BEFORE_STRIPE.format(reason=rules.ERR_PAYMENT_DISPUTED) in (
        detail.content.decode().replace("&#x27;", "'")
    )


# --- 2. pending requests reserve their amount ---------------------------------------------------


def test_a_new_request_is_refused_when_pending_requests_cover_the_payment(requester):
    payment = PaymentFactory(amount=5000)
    refund_request_create(payment=payment, amount=3000, acting_user=requester)
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=2001, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$20.01", refundable="$20.00"
    )
    refund_request_create(payment=payment, amount=2000, acting_user=requester)
    # Pending 50.00 of 50.00: nothing more can be asked for.
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=1, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$0.01", refundable="$0.00"
    )
    assert RefundRequest.objects.count() == 2


def test_new_request_counts_processed_in_flight_and_pending(requester):
    payment = PaymentFactory(amount=10000, amount_refunded=1000, status="partially_refunded")
    RefundFactory(payment=payment, amount=1000)
    RefundRequestFactory(payment=payment, amount=2000, status=RefundRequest.Status.APPROVED)
    RefundRequestFactory(payment=payment, amount=3000, status=RefundRequest.Status.PROCESSING)
    RefundRequestFactory(payment=payment, amount=1500)  # pending
    # Requests that ended hold nothing.
    for status in ("rejected", "failed", "canceled"):
        RefundRequestFactory(payment=payment, amount=1000, status=status)
    figures = payment_refundability(payment=payment)
    assert (figures.processed, figures.in_flight, figures.pending) == (1000, 5000, 1500)
    assert figures.refundable == 10000 - 1000 - 5000 - 1500
    with pytest.raises(RefundError):
        refund_request_create(payment=payment, amount=2501, acting_user=requester)
    assert refund_request_create(payment=payment, amount=2500, acting_user=requester).pk


def test_approval_does_not_count_the_request_itself(approver, requester):
    payment = PaymentFactory(amount=5000)
    row = refund_request_create(payment=payment, amount=5000, acting_user=requester)
    assert payment_refundability(payment=payment).refundable == 0
    assert refund_request_approve(refund_request=row, acting_user=approver).status == "approved"


def test_approval_counts_older_pending_requests_not_younger_ones(approver, requester):
    """First come, first served. An outside refund left 40.00 for requests of 30.00 (older)
    and 20.00 (younger): the younger cannot jump the queue, and the older is never blocked
    by the younger (no deadlock where neither can be approved)."""
    payment = PaymentFactory(amount=5000)
    older = refund_request_create(payment=payment, amount=3000, acting_user=requester)
    younger = refund_request_create(payment=payment, amount=2000, acting_user=requester)
    RefundFactory(payment=payment, amount=1000)
    Payment.objects.filter(pk=payment.pk).update(
        amount_refunded=1000, status=Payment.Status.PARTIALLY_REFUNDED
    )
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=younger, acting_user=approver)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$20.00", refundable="$10.00"
    )
    assert refund_request_approve(refund_request=older, acting_user=approver).status == "approved"
    # Now the older one is in flight: still only 10.00 for the younger.
    with pytest.raises(RefundError):
        refund_request_approve(refund_request=younger, acting_user=approver)


def test_the_eligibility_page_shows_what_is_already_asked_for(client, requester):
    payment = PaymentFactory(amount=10000)
    RefundRequestFactory(payment=payment, amount=2000, status=RefundRequest.Status.APPROVED)
    RefundRequestFactory(payment=payment, amount=3000)  # pending
    RefundRequestFactory(payment=payment, amount=500)  # pending
    client.force_login(requester)
    response = client.get(reverse("admin:refunds_payment_refund", args=[payment.pk]))
    assert response.status_code == 200
    figures = dict(response.context["figures"])
    assert figures["In flight (approved, processing)"] == "$20.00"
    assert figures["Asked for, awaiting approval"] == "$35.00"
    body = response.content.decode()
    assert "Asked for, awaiting approval</dt><dd>$35.00</dd>" in body
    assert "In flight (approved, processing)</dt><dd>$20.00</dd>" in body
    assert 'data-testid="refundable">$45.00<' in body


def test_the_eligibility_page_says_when_requests_cover_everything(client, requester):
    payment = PaymentFactory(amount=5000)
    RefundRequestFactory(payment=payment, amount=5000)  # pending
    client.force_login(requester)
    body = client.get(reverse("admin:refunds_payment_refund", args=[payment.pk])).content
    body = body.decode()
    assert 'data-testid="refundable">$0.00<' in body
    assert "asked for in a pending request" in body
    assert 'name="amount"' not in body  # no form to ask again


# --- 3. refunds Stripe reports as pending count ------------------------------------------------


def test_a_refund_pending_in_stripe_counts_against_the_refundable_amount(requester):
    payment = PaymentFactory(amount=5000)  # amount_refunded 0: Stripe has not settled it
    RefundFactory(payment=payment, amount=2000, status=Refund.Status.PENDING)
    RefundFactory(payment=payment, amount=1000, status=Refund.Status.FAILED)  # holds nothing
    figures = payment_refundability(payment=payment)
    assert (figures.processed, figures.refundable) == (2000, 3000)
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=3001, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$30.01", refundable="$30.00"
    )


def test_processing_counts_a_refund_pending_in_stripe(approver, fake_stripe):
    payment = PaymentFactory(amount=5000)
    row = _approved(payment, 4000, approver)
    RefundFactory(payment=payment, amount=2000, status=Refund.Status.PENDING)
    result = refund_request_process(refund_request=row)
    assert fake_stripe.create_calls == 0
    assert result.status == RefundRequest.Status.CANCELED
    reason = rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(amount="$40.00", refundable="$30.00")
    assert result.failure_message == rules.CANCELED_BEFORE_STRIPE.format(reason=reason)


@pytest.mark.parametrize(
    ("amount_refunded", "pending", "failed", "processed"),
    [(0, 2000, 0, 2000), (3000, 2000, 0, 3000), (2500, 2500, 0, 2500), (0, 0, 1000, 0)],
)
def test_processed_is_the_larger_of_amount_refunded_and_the_committed_refunds(
    amount_refunded, pending, failed, processed
):
    payment = PaymentFactory(amount=5000, amount_refunded=amount_refunded)
    if pending:
        RefundFactory(payment=payment, amount=pending, status=Refund.Status.PENDING)
    if failed:
        RefundFactory(payment=payment, amount=failed, status=Refund.Status.FAILED)
    assert payment_processed_amount(payment=payment) == processed
