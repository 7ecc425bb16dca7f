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
