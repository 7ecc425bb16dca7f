"""Real row locks on PostgreSQL: 20 concurrent approvals of one customer adjustment (and
apply sweeps running beside them) make exactly one Stripe balance transaction.

Threads each use their own database connection."""

import threading

import pytest
from django.db import connection

from backoffice.models import AdminAction
from payments.models import BalanceEntry, CustomerAdjustment, StudentBalance
from payments.services.customer_adjustments import (
    AUDIT_APPLY,
    AUDIT_APPROVE,
    CustomerAdjustmentError,
    customer_adjustment_approve,
    customer_adjustment_request,
    customer_adjustments_apply_approved,
)
from tests.factories import CustomerFactory
from tests.payments.customer_adjustment_support import FakeCustomerBalance, approver, requester

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


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


def _money_request():
    return customer_adjustment_request(
        customer=CustomerFactory(),
        direction="credit",
        unit="money",
        amount=2500,
        currency="usd",
        reason="Tutor no-show",
        acting_user=requester(),
    )


def _approvals(adjustment, approvers):
    def approve(user):
        def run():
            try:
                customer_adjustment_approve(adjustment=adjustment, acting_user=user, note="ok")
            except CustomerAdjustmentError:
                return "refused"
            return "approved"

        return run

    return [approve(user) for user in approvers]


def test_20_concurrent_approvals_make_one_stripe_balance_transaction(monkeypatch):
    stripe_balance = FakeCustomerBalance().install(monkeypatch)
    adjustment = _money_request()
    approvers = [approver() for _ in range(THREADS)]

    def sweep():
        return customer_adjustments_apply_approved()["applied"]

    results, errors = run_concurrently(_approvals(adjustment, approvers) + [sweep] * 5)
    assert errors == []
    assert sorted(r for r in results if isinstance(r, str)) == ["approved"] + ["refused"] * 19
    assert len(stripe_balance.create_calls) == 1
    assert len(stripe_balance.transactions) == 1
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.attempts) == (CustomerAdjustment.Status.APPLIED, 1)
    assert AdminAction.objects.filter(action=AUDIT_APPROVE).count() == 1
    assert AdminAction.objects.filter(action=AUDIT_APPLY).count() == 1


@pytest.mark.stripe
def test_20_concurrent_approvals_make_one_transaction_in_the_peer(
    localstripe, settings, monkeypatch
):
    from payments import gateway
    from payments.models import Customer
    from payments.sync import upsert_customers
    from tests.management.stripe_peer import setup_peer

    peer = setup_peer(localstripe, settings, monkeypatch)
    made = peer.client.v1.customers.create(params={"email": "ada@example.com"})
    upsert_customers([gateway.stripe_customer_retrieve(customer_id=made.id)])
    adjustment = customer_adjustment_request(
        customer=Customer.objects.get(stripe_id=made.id),
        direction="credit",
        unit="money",
        amount=2500,
        currency="usd",
        reason="Tutor no-show",
        acting_user=requester(),
    )
    approvers = [approver() for _ in range(THREADS)]
    results, errors = run_concurrently(_approvals(adjustment, approvers))
    assert errors == []
    assert sorted(results) == ["approved"] + ["refused"] * 19
    [txn] = gateway.stripe_customer_balance_transaction_list(customer_id=made.id)
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.stripe_balance_transaction_id) == ("applied", txn.id)
    assert gateway.stripe_customer_retrieve(customer_id=made.id).balance == -2500


def test_20_concurrent_approvals_of_hours_write_one_ledger_entry():
    customer = CustomerFactory()
    adjustment = customer_adjustment_request(
        customer=customer,
        direction="credit",
        unit="hours",
        minutes=120,
        reason="Make-up lessons",
        acting_user=requester(),
    )
    approvers = [approver() for _ in range(THREADS)]
    results, errors = run_concurrently(_approvals(adjustment, approvers))
    assert errors == []
    assert sorted(results) == ["approved"] + ["refused"] * 19
    [entry] = BalanceEntry.objects.filter(reference=f"customer_adjustment:{adjustment.pk}")
    assert entry.minutes == 120
    assert StudentBalance.objects.get(customer=customer).minutes == 120
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.balance_entry_id) == ("applied", entry.pk)
