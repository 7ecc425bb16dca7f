"""A dispute against processing, on PostgreSQL with real row locks: whoever holds the payment's
lock first decides, and a refund never goes to Stripe for a payment the claim saw disputed.

The gateway is the conftest's thread-safe fake (it counts Stripe calls); each thread has its
own database connection. A thread "waits on the lock" when pg_stat_activity says so, not
after a sleep."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payments.gateway import StripeDispute
from payments.models import Payment
from payments.sync import upsert_disputes
from refunds import rules, services
from refunds.models import RefundRequest
from refunds.services import refund_request_approve, refund_request_process
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 20


def _dispute(payment: Payment) -> StripeDispute:
    return StripeDispute(
        id=f"dp_race{payment.pk}",
        charge_id=payment.stripe_charge_id,
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=payment.amount,
        currency=payment.currency,
        status="needs_response",
        created=timezone.now(),
        reason="fraudulent",
    )


def _wait_until_a_backend_waits_on_a_lock() -> None:
    """Poll pg_stat_activity (from the caller's connection) until another backend is blocked
    on a lock: proof that it reached the locked row, not merely that time passed."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            # Inside a transaction the statistics views are a snapshot taken once: drop it.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("no backend ever waited on the lock")


def _in_thread(fn, results: dict, key: str) -> threading.Thread:
    def run():
        try:
            results[key] = fn()
        except Exception as exc:  # surfaced by the test's assertions
            results[key] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def approved(approver, monkeypatch):
    """A 20.00 request on a 50.00 payment, approved, its processing not started (the on-commit
    enqueue is switched off so the test starts processing itself)."""
    monkeypatch.setattr(services, "_enqueue_processing", lambda *args: None)
    payment = PaymentFactory(amount=5000)
    row = RefundRequestFactory(payment=payment, amount=2000)
    refund_request_approve(refund_request=row, acting_user=approver)
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.APPROVED
    return row


def test_disputed_after_approval_then_processing_cancels_without_a_stripe_call(
    approved, fake_stripe
):
    upsert_disputes([_dispute(approved.payment)])
    result = refund_request_process(refund_request=approved)
    assert fake_stripe.create_calls == 0
    assert result.status == RefundRequest.Status.CANCELED
    approved.refresh_from_db()
    assert approved.status == RefundRequest.Status.CANCELED
    assert approved.failure_message == rules.CANCELED_BEFORE_STRIPE.format(
        reason=rules.ERR_PAYMENT_DISPUTED
    )


def test_a_dispute_holding_the_lock_makes_processing_wait_then_cancel(approved, fake_stripe):
    """The dispute's transaction has the payment locked (and marked disputed, uncommitted)
    when processing starts: the claim waits for the lock, then reads the committed dispute."""
    results: dict = {}
    dispute_locked = threading.Event()

    def dispute():
        with transaction.atomic():
            upsert_disputes([_dispute(approved.payment)])
            dispute_locked.set()
            _wait_until_a_backend_waits_on_a_lock()  # processing is blocked behind us
            return "committed"

    def process():
        assert dispute_locked.wait(WAIT_SECONDS)
        return refund_request_process(refund_request=approved).status

    threads = [_in_thread(dispute, results, "dispute"), _in_thread(process, results, "process")]
    for thread in threads:
        thread.join(WAIT_SECONDS * 2)
    assert results == {"dispute": "committed", "process": RefundRequest.Status.CANCELED}
    assert fake_stripe.create_calls == 0
    approved.refresh_from_db()
    assert approved.failure_message == rules.CANCELED_BEFORE_STRIPE.format(
        reason=rules.ERR_PAYMENT_DISPUTED
    )
    assert Payment.objects.get(pk=approved.payment_id).status == Payment.Status.DISPUTED


def test_processing_holding_the_lock_makes_the_dispute_wait(approved, fake_stripe, monkeypatch):
    """The claim has the payment locked and has checked it when the dispute arrives: the
    dispute waits for the claim to commit. The refund was decided on a payment that was not
    disputed, so it goes to Stripe once; the dispute is recorded after it."""
    results: dict = {}
    claim_checking = threading.Event()
    original_check = services._not_refundable_reason

    def check_then_hold(**kwargs):
        reason = original_check(**kwargs)
        claim_checking.set()
        _wait_until_a_backend_waits_on_a_lock()  # the dispute is blocked behind the claim
        return reason

    monkeypatch.setattr(services, "_not_refundable_reason", check_then_hold)

    def dispute():
        assert claim_checking.wait(WAIT_SECONDS)
        upsert_disputes([_dispute(approved.payment)])
        return "committed"

    def process():
        return refund_request_process(refund_request=approved).status

    threads = [_in_thread(process, results, "process"), _in_thread(dispute, results, "dispute")]
    for thread in threads:
        thread.join(WAIT_SECONDS * 2)
    assert results == {"process": RefundRequest.Status.PROCESSED, "dispute": "committed"}
    assert fake_stripe.create_calls == 1
    payment = Payment.objects.get(pk=approved.payment_id)
    assert (payment.status, payment.amount_refunded) == (Payment.Status.DISPUTED, 2000)
