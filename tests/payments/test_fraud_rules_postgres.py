"""Fraud detection passes at once on PostgreSQL (real transactions in real threads): the
partial unique index and ON CONFLICT DO NOTHING leave one unresolved alert per cause."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from payments import fraud_rules
from payments.models import FraudAlert, FraudRuleFailure, Payment
from tests.factories import CustomerFactory, PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_at_once(n, target):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def work(index):
        try:
            barrier.wait(timeout=10)
            results.append(target(index))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


@pytest.fixture
def patterns():
    """Three causes: a failed burst, a new account's large payment, one card on 3 customers."""
    now = timezone.now()
    burst = CustomerFactory()
    for minutes in (1, 2, 3):
        PaymentFactory(customer=burst, failed=True, created=now - timedelta(minutes=minutes))
    young = CustomerFactory(created=now - timedelta(days=1))
    PaymentFactory(customer=young, amount=60000, created=now - timedelta(minutes=5))
    for minutes in (10, 11, 12):
        PaymentFactory(
            customer=CustomerFactory(),
            card_fingerprint="fpShared",
            created=now - timedelta(minutes=minutes),
        )
    return now


def test_two_passes_that_both_saw_no_alert_insert_one(patterns, monkeypatch):
    """Both passes read "no alert for this cause yet", then both INSERT: the second INSERT
    waits for the first to commit and then does nothing."""
    original = FraudAlert.objects.bulk_create
    gate = threading.Barrier(2)

    def both_at_the_insert(*args, **kwargs):
        gate.wait(timeout=10)
        return original(*args, **kwargs)

    monkeypatch.setattr(FraudAlert.objects, "bulk_create", both_at_the_insert)
    scope = fraud_rules.Scope(since=patterns - timedelta(hours=24))

    def one_pass(index):
        return fraud_rules.fraud_rules_run(
            scope=scope, trigger="command", now=patterns + timedelta(microseconds=index)
        )

    results = run_at_once(2, one_pass)
    assert all(r.status == "succeeded" for r in results), [r.errors for r in results]
    assert sorted(FraudAlert.objects.values_list("rule", flat=True)) == [
        "failed_attempts",
        "new_account_high_amount",
        "shared_card",
    ]
    opened = {}
    for result in results:
        for rule, n in result.opened.items():
            opened[rule] = opened.get(rule, 0) + n
    assert opened == {"failed_attempts": 1, "new_account_high_amount": 1, "shared_card": 1}


def test_many_event_hooks_and_a_full_pass_at_once_open_each_alert_once(patterns):
    def hook_or_pass(index):
        if index == 0:
            return fraud_rules.fraud_detect()
        return fraud_rules.fraud_detect_touched(
            customer_ids=list(Payment.objects.values_list("customer_id", flat=True)),
            fingerprints=["fpShared"],
        )

    for _ in range(3):
        run_at_once(8, hook_or_pass)
    assert FraudAlert.objects.count() == 3
    assert not FraudRuleFailure.objects.exists()
