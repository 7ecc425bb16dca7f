"""`manage_payments` with no flag: the overview finance and on-call read first."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from payments.models import StudentBalance
from tests.factories import CustomerFactory, DisputeFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def test_overview_counts():
    PaymentFactory.create_batch(3)
    PaymentFactory(failed=True)
    DisputeFactory()
    StudentBalance.objects.create(customer=CustomerFactory(), minutes=-60)
    out = StringIO()
    call_command("manage_payments", "--json", stdout=out)
    overview = json.loads(out.getvalue())
    assert overview["payments"] == 5
    assert overview["payments_by_status"] == {"succeeded": 3, "failed": 1, "disputed": 1}
    assert overview["open_disputes"] == 1
    assert overview["negative_balances"] == 1
    assert overview["pending_refund_requests"] == 0
    assert overview["last_sync"] == "never"
    assert overview["webhooks_24h"]["failed_24h"] == 0


def test_overview_prints_one_line_per_figure():
    out = StringIO()
    call_command("manage_payments", stdout=out)
    assert out.getvalue().splitlines()[0].split() == ["payments", "0"]
