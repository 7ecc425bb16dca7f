"""The demo seeding (every priority and status; pending ones on localstripe payments) and
`manage_payments --process-pending-refunds`."""

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from management.demo_refunds import (
    GROUP_APPROVERS,
    GROUP_REQUESTERS,
    GROUP_SENIOR,
    WARN_NO_STRIPE,
    seed_refund_requests,
)
from refunds.models import RefundRequest
from refunds.selectors import Priority, refund_request_queue
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


def test_demo_without_stripe_warns_and_seeds_local_history(settings):
    settings.STRIPE_API_BASE = ""
    PaymentFactory.create_batch(12, amount=5000)
    out = io.StringIO()
    counts = seed_refund_requests(stdout=out)
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert counts["stripe_backed"] == 0
    statuses = set(RefundRequest.objects.values_list("status", flat=True))
    assert {"processed", "rejected", "failed", "canceled", "pending"} <= statuses
    # Idempotent.
    assert seed_refund_requests()["refund_requests"] == 0


@pytest.mark.stripe
def test_demo_pending_requests_are_on_localstripe_payments(localstripe, settings, requests_get):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    PaymentFactory.create_batch(10, amount=5000)
    counts = seed_refund_requests(stdout=io.StringIO())
    assert counts["stripe_backed"] >= 9
    queue = refund_request_queue()
    assert {Priority.URGENT, Priority.HIGH, Priority.LARGE, Priority.NORMAL} <= set(
        queue.values_list("priority", flat=True)
    )
    assert set(RefundRequest.objects.values_list("status", flat=True)) == set(
        RefundRequest.Status.values
    )
    pending = RefundRequest.objects.filter(status="pending").select_related("payment")
    for row in pending:
        intent = requests_get(f"/v1/payment_intents/{row.payment.stripe_payment_intent_id}")
        assert intent["status"] == "succeeded"
        assert intent["amount"] == row.payment.amount
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
