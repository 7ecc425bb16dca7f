"""Student hour balances in the demo and the admin."""

from datetime import UTC, datetime

import pytest
from django.db.models import Sum
from django.urls import reverse

from management.demo_data import DemoGenerator, demo_size
from payments.models import StudentBalance

pytestmark = pytest.mark.django_db


def test_demo_balances_equal_the_sum_of_their_entries_and_some_are_negative():
    DemoGenerator(seed=5, now=datetime(2026, 11, 1, tzinfo=UTC)).run(demo_size(1500))
    balances = StudentBalance.objects.all()
    assert balances.exists()
    for balance in balances:
        assert balance.minutes == balance.entries.aggregate(total=Sum("minutes"))["total"]
    assert balances.filter(minutes__lt=0).exists()


def test_negative_balance_filter(admin_client):
    DemoGenerator(seed=5, now=datetime(2026, 11, 1, tzinfo=UTC)).run(demo_size(1500))
    response = admin_client.get(
        reverse("admin:payments_studentbalance_changelist"), {"balance": "negative"}
    )
    shown = response.context["cl"].result_list
    assert len(shown) == StudentBalance.objects.filter(minutes__lt=0).count() > 0
    assert "h</" in response.content.decode() or " h" in response.content.decode()


def test_the_demo_feeds_hours_through_the_real_paths():
    """Packages credited by the sync's upserts, lessons by the import service, expired
    packages taken off by the expiry job; some near expiry; the ledger adds up."""
    from django.utils import timezone

    from payments import hours_selectors
    from payments.models import BalanceEntry, HourPackage, Lesson

    DemoGenerator(seed=5, now=timezone.now()).run(demo_size(1500))
    kinds = set(BalanceEntry.objects.values_list("kind", flat=True))
    assert {"purchase", "usage", "reservation", "release", "expiry", "refund"} <= kinds
    assert set(Lesson.objects.values_list("status", flat=True)) == set(Lesson.Status.values)
    assert set(Lesson.objects.values_list("source", flat=True)) == {"demo"}
    assert not BalanceEntry.objects.filter(reference="").exists()
    now = timezone.now()
    states = {
        row.state
        for balance in StudentBalance.objects.all()
        for row in hours_selectors.balance_packages(balance, now=now)
    }
    assert {"near_expiry", "expired", "active", "owed"} <= states
    # Every purchase entry belongs to a succeeded hour-package payment, once.
    purchases = BalanceEntry.objects.filter(kind="purchase")
    assert purchases.count() == purchases.values("payment").distinct().count()
    assert HourPackage.objects.filter(expires_at__lte=now, remaining__gt=0).count() == 0
