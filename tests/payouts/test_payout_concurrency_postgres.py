"""Real row locks on PostgreSQL: 50 concurrent processing runs of one payout make exactly one
transfer, and concurrent payout runs (and manual payouts) never pay the same balance twice.

Threads each use their own database connection; at most 50 at a time."""

import threading

import pytest
from django.db import connection

from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry, Payout
from payments.services.payouts import (
    PayoutError,
    payout_manual_create,
    payout_process,
    payout_run_create,
    payouts_process_approved,
)
from tests.factories import InstructorFactory
from tests.payouts.conftest import earn

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

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


def test_50_concurrent_processing_runs_make_exactly_one_transfer(connect):
    ada = InstructorFactory(stripe_account_id="acct_ada")
    earn(ada, 25_000)
    payout_run_create()
    payout = Payout.objects.get()
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.APPROVED)

    def process():
        return payout_process(payout_id=payout.pk).status

    def sweep():
        return payouts_process_approved()["paid"]

    results, errors = run_concurrently([process, sweep] * (THREADS // 2))
    assert errors == []
    assert len(results) == THREADS
    assert len(connect.create_calls) == 1
    assert len(connect.transfers) == 1
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == (Payout.Status.PAID, 1)
    assert earning_balances()[(ada.pk, "usd")].balance == 0


@pytest.mark.stripe
def test_50_concurrent_processing_runs_make_one_transfer_in_stripe(ines):
    from payments import gateway

    payout_run_create()
    payout = Payout.objects.get()
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.APPROVED)

    def process():
        return payout_process(payout_id=payout.pk).status

    def sweep():
        return payouts_process_approved()["candidates"]

    results, errors = run_concurrently([process, sweep] * (THREADS // 2))
    assert errors == []
    assert len(results) == THREADS
    [made] = gateway.stripe_transfer_list(transfer_group=f"payout:{payout.pk}")
    assert gateway.stripe_transfer_list() == [made]
    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer_id, payout.attempts) == ("paid", made.id, 1)


def test_concurrent_runs_and_manual_payouts_never_pay_a_balance_twice(clerk):
    instructors = InstructorFactory.create_batch(20)
    for instructor in instructors:
        earn(instructor, 5000)
    first = instructors[0]

    def run():
        return "run", payout_run_create().payouts_created

    def manual():
        try:
            payout_manual_create(
                instructor=first, amount=5000, currency="usd", note="Advance", acting_user=clerk
            )
        except PayoutError:
            return "manual", 0
        return "manual", 1

    results, errors = run_concurrently([run] * 10 + [manual] * 10)
    assert errors == []
    # What the callers say they created is what exists.
    assert sum(count for kind, count in results) == 20
    # Whoever came first paid each balance; the rest found it gone (or an open payout).
    assert Payout.objects.count() == 20
    assert Payout.objects.filter(instructor=first).count() == 1
    balances = earning_balances()
    assert all(balances[(i.pk, "usd")].balance == 0 for i in instructors)
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT).count() == 20
