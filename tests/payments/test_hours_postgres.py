"""The hours ledger's exactly-once guarantees on PostgreSQL, where row locks are real:
- the same succeeded hour-package snapshot upserted by eight writers at once (webhook
  deliveries and sync runs): one credit;
- two lesson imports of the same file at once: each booking's step applied once;
- the expiry job run twice at once: one entry per package."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from payments import hours, lessons, sync
from payments.models import BalanceEntry, HourPackage, StudentBalance
from tests.factories import CustomerFactory
from tests.payments.test_hours_payments import customer_row, intent
from tests.payments.test_sync_postgres import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_replays_of_a_package_credit_it_once():
    sync.upsert_customers([customer_row()])
    run_in_threads(8, lambda: sync.upsert_payment_intents([intent()]))  # asserts no errors
    assert BalanceEntry.objects.filter(kind="purchase").count() == 1
    assert HourPackage.objects.count() == 1
    assert StudentBalance.objects.get().minutes == 600


def test_concurrent_imports_of_one_file_apply_each_step_once():
    customer = CustomerFactory(email="ada@example.com")
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=6000,
        kind="adjustment",
        reference="pkg",
        expires_at=timezone.now() + timedelta(days=30),
    )
    rows = [
        {
            "student": "ada@example.com",
            "booking_id": f"bk{i}",
            "minutes": "30",
            "date": "2026-11-30",
            "status": "consumed",
        }
        for i in range(40)
    ]
    results = []
    run_in_threads(4, lambda: results.append(lessons.lessons_import(rows)))
    # Whoever ran first applied the file; the others found it applied (unchanged) or were
    # refused whole by the unique booking (ERR_CONCURRENT): never a step twice.
    assert any(r.applied and r.counts["consumed"] == 40 for r in results)
    for r in results:
        assert r.applied or [e.message for e in r.errors] == [lessons.ERR_CONCURRENT]
    assert BalanceEntry.objects.filter(kind="usage").count() == 40
    balance = StudentBalance.objects.get()
    assert balance.minutes == 6000 - 40 * 30
    assert balance.entries.aggregate(t=Sum("minutes"))["t"] == balance.minutes


def test_concurrent_expiry_runs_write_one_entry_per_package():
    for _ in range(5):
        customer = CustomerFactory()
        hours.credit_minutes(
            customer_id=customer.pk,
            minutes=60,
            kind="adjustment",
            reference=f"pkg{customer.pk}",
            expires_at=timezone.now() + timedelta(days=1),
        )
    HourPackage.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    run_in_threads(3, hours.expire_packages)
    assert BalanceEntry.objects.filter(kind="expiry").count() == 5
    assert not StudentBalance.objects.exclude(minutes=0).exists()
