"""The demo's customer adjustments: pending money and hours in the queue, a few applied (money
in the peer's customer balances, hours in the hours ledger), one rejected, all through the
services by two demo people (four-eyes, audited)."""

import io

import pytest

from backoffice.models import AdminAction
from management.demo_counts import demo_count_lines
from management.demo_customer_adjustments import (
    WARN_NO_STRIPE,
    adjustment_line,
    seed_customer_adjustments,
)
from management.demo_data import DemoGenerator, demo_size
from payments import gateway
from payments.models import BalanceEntry, CustomerAdjustment
from tests.management.stripe_peer import setup_peer

pytestmark = pytest.mark.django_db


@pytest.mark.stripe
def test_the_demo_seeds_pending_applied_and_rejected_through_the_peer(
    localstripe, settings, monkeypatch
):
    setup_peer(localstripe, settings, monkeypatch)
    out = io.StringIO()
    counts = seed_customer_adjustments(stdout=out)
    assert counts["pending"] == 7
    assert counts["applied"] == 3 and counts["rejected"] == 1
    assert counts["approved"] == counts["applying"] == counts["failed"] == 0
    pending = CustomerAdjustment.objects.filter(status="pending")
    assert {row.unit for row in pending} == {"money", "hours"}
    assert {row.currency for row in pending if row.unit == "money"} == {"usd", "eur", "jpy"}
    # Every applied money adjustment is one transaction in the peer, the mirror read back.
    for row in CustomerAdjustment.objects.filter(status="applied", unit="money"):
        [txn] = gateway.stripe_customer_balance_transaction_list(customer_id=row.customer.stripe_id)
        assert txn.id == row.stripe_balance_transaction_id and txn.amount == -row.amount
        row.customer.refresh_from_db()
        assert row.customer.stripe_balance == -row.amount
    hours = CustomerAdjustment.objects.get(status="applied", unit="hours")
    assert hours.balance_entry.reference == f"customer_adjustment:{hours.pk}"
    # Four-eyes: nobody decided their own request; every step audited.
    for row in CustomerAdjustment.objects.exclude(status="pending"):
        assert row.decided_by != row.requested_by
    assert AdminAction.objects.filter(action__startswith="customer_adjustment.").count() == (
        CustomerAdjustment.objects.count() + 4 + 2  # requests + decisions + Stripe results
    )
    assert adjustment_line() in out.getvalue()
    assert adjustment_line() in demo_count_lines()
    # Idempotent.
    assert seed_customer_adjustments() == counts
    assert CustomerAdjustment.objects.count() == sum(counts.values())


def test_without_a_peer_only_hours_are_seeded(settings):
    settings.STRIPE_API_BASE = ""
    DemoGenerator(seed=5).run(demo_size(200))
    out = io.StringIO()
    counts = seed_customer_adjustments(stdout=out)
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert set(CustomerAdjustment.objects.values_list("unit", flat=True)) == {"hours"}
    assert counts["applied"] == 1 and counts["pending"] == 3
    assert BalanceEntry.objects.filter(reference__startswith="customer_adjustment:").count() == 1
