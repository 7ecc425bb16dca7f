"""Real row locks on PostgreSQL, real refunds in localstripe (which checks neither
idempotency keys nor over-refunds, so any double refund would show there).

Threads each use their own database connection; at most 50 at a time."""

import threading

import pytest
from django.db import connection

from management.demo_refunds import demo_payment_create
from refunds.models import RefundRequest
from refunds.services import (
    RefundError,
    refund_request_approve,
    refund_request_create,
    refund_request_process,
)
from tests.refunds.test_localstripe import refunds_in_stripe

pytestmark = [pytest.mark.postgres, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

THREADS = 50


def run_concurrently(functions):
    """Start every function at the same moment (a barrier), each in its own thread with its
    own connection; return (results, errors)."""
    barrier = threading.Barrier(len(functions))
    results, errors = [], []
    lock = threading.Lock()

    def runner(fn):
        try:
            barrier.wait()
            value = fn()
            with lock:
                results.append(value)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(fn,)) for fn in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


@pytest.fixture
def stripe_payment(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    return demo_payment_create(amount=5000, email="ada@example.com", name="Ada", key="pg")


def test_50_concurrent_approvals_and_processing_runs_refund_once(
    localstripe, stripe_payment, requester, approver
):
    row = refund_request_create(payment=stripe_payment, amount=1500, acting_user=requester)

    def approve():
        # Approval queues processing on commit; the q2 task runs inline in tests.
        return refund_request_approve(refund_request=row, acting_user=approver).status

    def process():
        return refund_request_process(refund_request=row).status

    results, errors = run_concurrently([approve, process] * (THREADS // 2))
    assert all(isinstance(e, RefundError) for e in errors), errors
    assert len(results) + len(errors) == THREADS
    # Every approval but one found the request no longer pending.
    assert len(errors) == THREADS // 2 - 1
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert [r["amount"] for r in in_stripe] == [1500]
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.stripe_refund_id == in_stripe[0]["id"]
    stripe_payment.refresh_from_db()
    assert stripe_payment.amount_refunded == 1500


def test_concurrent_partial_refunds_never_exceed_the_captured_amount(
    localstripe, stripe_payment, requester, approver
):
    # 20 pending requests of 10.00 on a 50.00 payment: 5 through the service (which reserves
    # pending amounts and would refuse a 6th) and 15 written directly, as data from before
    # that rule or a bypass would be. Approval serves them first come, first served.
    rows = [
        refund_request_create(payment=stripe_payment, amount=1000, acting_user=requester)
        for _ in range(5)
    ]
    rows += [
        RefundRequest.objects.create(
            payment=stripe_payment, amount=1000, currency="usd", requested_by=requester
        )
        for _ in range(15)
    ]

    def approve_and_process(row):
        def run():
            refund_request_approve(refund_request=row, acting_user=approver)
            return refund_request_process(refund_request=row).status

        return run

    results, errors = run_concurrently([approve_and_process(row) for row in rows])
    assert all(isinstance(e, RefundError) for e in errors), errors
    assert len(results) == 5  # exactly the captured amount, in 10.00 steps
    in_stripe = refunds_in_stripe(localstripe, stripe_payment.stripe_payment_intent_id)
    assert sum(r["amount"] for r in in_stripe) == 5000
    stripe_payment.refresh_from_db()
    assert stripe_payment.amount_refunded == 5000
    assert RefundRequest.objects.filter(status=RefundRequest.Status.PROCESSED).count() == 5
