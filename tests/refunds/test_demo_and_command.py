"""The demo seeding (every priority and status; pending ones on localstripe payments) and
`manage_payments --process-pending-refunds`."""

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from management.demo_counts import refund_queue_line
from management.demo_refunds import (
    GROUP_APPROVERS,
    GROUP_REQUESTERS,
    GROUP_SENIOR,
    HISTORY,
    IN_FLIGHT,
    PENDING,
    WARN_NO_STRIPE,
    seed_refund_requests,
)
from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q
from refunds.services import refund_request_approve
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db


def test_process_pending_refunds_command(approver, fake_stripe):
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)  # on_commit not run here
    out = io.StringIO()
    call_command("manage_payments", "--process-pending-refunds", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "candidates": 1,
        "processed": 1,
        "failed": 0,
        "canceled": 0,
        "still_processing": 0,
        "unknown_outcome": 0,
        "gateway_error": "",
    }
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert fake_stripe.create_calls == 1


def _generated_payments():
    """Enough captured payments in each currency for the demo's history rows."""
    PaymentFactory.create_batch(40, amount=5000)
    for currency, amount in (("eur", 5000), ("gbp", 5000), ("jpy", 9000)):
        PaymentFactory.create_batch(5, currency=currency, amount=amount)


def test_demo_without_stripe_warns_and_seeds_local_history(settings):
    settings.STRIPE_API_BASE = ""
    _generated_payments()
    out = io.StringIO()
    counts = seed_refund_requests(stdout=out)
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert counts["stripe_backed"] == 0
    statuses = set(RefundRequest.objects.values_list("status", flat=True))
    assert {"processed", "rejected", "failed", "canceled", "pending"} <= statuses
    # Idempotent.
    assert seed_refund_requests()["refund_requests"] == 0


@pytest.mark.stripe
def test_demo_queue_has_every_priority_status_and_currency_on_localstripe_payments(
    localstripe, settings, requests_get
):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    _generated_payments()
    out = io.StringIO()
    counts = seed_refund_requests(stdout=out)
    assert counts["stripe_backed"] == len(PENDING) + len(IN_FLIGHT)
    assert counts["local"] == len(HISTORY)
    assert 55 <= RefundRequest.objects.count() == counts["refund_requests"] <= 65
    assert set(RefundRequest.objects.values_list("status", flat=True)) == set(
        RefundRequest.Status.values
    )
    pending = RefundRequest.objects.filter(status="pending")
    for priority in Priority.RANK:
        assert pending.filter(priority_q(priority)).count() >= 7, priority
    assert {"usd", "eur", "gbp", "jpy"} == set(pending.values_list("currency", flat=True))
    assert {"usd", "eur", "gbp", "jpy"} == set(
        RefundRequest.objects.exclude(status="pending").values_list("currency", flat=True)
    )
    # Pending and in-flight requests are on real localstripe payments, so approving works.
    for row in RefundRequest.objects.filter(
        status__in=["pending", "approved", "processing"]
    ).select_related("payment"):
        intent = requests_get(f"/v1/payment_intents/{row.payment.stripe_payment_intent_id}")
        assert intent["status"] == "succeeded"
        assert (intent["amount"], intent["currency"]) == (row.payment.amount, row.currency)
        assert row.amount <= row.payment.amount
    assert f"Refund requests: {RefundRequest.objects.count()} written" in out.getvalue()
    # The start-up line is the queue as its screens count it.
    line = refund_queue_line()
    assert line.startswith(f"Refund queue: {pending.count()} pending (")
    assert f"{RefundRequest.objects.count()} requests in all" in line
    groups = {GROUP_REQUESTERS, GROUP_APPROVERS, GROUP_SENIOR}
    assert groups <= set(Group.objects.values_list("name", flat=True))


@pytest.fixture
def requests_get(localstripe):
    import requests

    def get(path):
        response = requests.get(localstripe + path, auth=("sk_test_localstripe", ""), timeout=5)
        response.raise_for_status()
        return response.json()

    return get


def test_the_safety_net_is_scheduled():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="refunds: process pending refunds")
    assert schedule.func == "management.jobs.process_pending_refunds_scheduled"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 5)
