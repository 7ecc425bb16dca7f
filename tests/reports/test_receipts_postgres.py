"""Receipt numbers under real concurrency (PostgreSQL row locks): no gaps, no duplicates."""

import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from reports.models import DocumentSequence, Receipt
from reports.receipts import credit_note_issue, receipt_issue, receipts_issue_missing
from tests.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 12


def _run_concurrently(target, args_list):
    barrier = threading.Barrier(len(args_list))
    errors = []

    def worker(*args):
        try:
            barrier.wait(timeout=30)
            target(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_concurrent_issuers_get_consecutive_unique_numbers():
    assert connection.vendor == "postgresql"
    payments = PaymentFactory.create_batch(THREADS)
    # Each payment issued by two threads at once, plus the repair job racing them.
    jobs = [(p,) for p in payments] + [(p,) for p in payments]

    def issue(payment):
        receipt_issue(payment=payment)

    _run_concurrently(issue, jobs)
    receipts_issue_missing()
    year = timezone.localdate().year
    sequences = sorted(Receipt.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, THREADS + 1))
    assert Receipt.objects.values("payment").distinct().count() == THREADS
    assert DocumentSequence.objects.get(kind="receipt", year=year).last_number == THREADS


def test_repair_jobs_racing_each_other_and_single_issuers_leave_no_gap():
    payments = PaymentFactory.create_batch(40)
    calls = [("job", None)] * 4 + [("one", p) for p in payments[:8]]

    def run(kind, payment):
        if kind == "job":
            receipts_issue_missing()
        else:
            receipt_issue(payment=payment)

    _run_concurrently(run, calls)
    sequences = sorted(Receipt.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, 41))
    assert Receipt.objects.values("payment").distinct().count() == 40


def test_concurrent_credit_notes_for_one_refund_give_one_document():
    payment = PaymentFactory(amount=10_000)

    def issue(i):
        credit_note_issue(payment=payment, refund_amount=1000, stripe_refund_id=f"re_{i % 3}")

    _run_concurrently(issue, [(i,) for i in range(THREADS)])
    notes = sorted(Receipt.objects.filter(kind="credit_note").values_list("sequence", flat=True))
    assert notes == [1, 2, 3]
