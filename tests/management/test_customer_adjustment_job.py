"""The customer adjustments' safety-net job: applies approved money adjustments whose task was
lost, and fails its scheduled run (the task shows failed) while an unknown Stripe outcome is
left, which the next run looks up before anything is resent."""

import pytest

from management.jobs import (
    ERR_ADJUSTMENTS_UNKNOWN_OUTCOME,
    JobFailed,
    apply_customer_adjustments_scheduled,
)
from management.schedules import ADJUSTMENTS_APPLY_SCHEDULE_FUNC, job_schedule_by_name
from payments.exceptions import ERR_TIMEOUT
from payments.models import CustomerAdjustment
from payments.services.customer_adjustments import (
    customer_adjustment_approve,
    customer_adjustment_request,
)
from tests.factories import CustomerFactory
from tests.payments.customer_adjustment_support import FakeCustomerBalance, approver, requester

pytestmark = pytest.mark.django_db


def _approved():
    adjustment = customer_adjustment_request(
        customer=CustomerFactory(),
        direction="credit",
        unit="money",
        amount=900,
        currency="usd",
        reason="Goodwill",
        acting_user=requester(),
    )
    # Outside django_capture_on_commit_callbacks: the approval's own task never runs (lost).
    return customer_adjustment_approve(adjustment=adjustment, acting_user=approver())


def test_the_job_applies_what_a_lost_task_left_approved(monkeypatch):
    stripe_balance = FakeCustomerBalance().install(monkeypatch)
    adjustment = _approved()
    assert CustomerAdjustment.objects.get(pk=adjustment.pk).status == "approved"
    result = apply_customer_adjustments_scheduled()
    assert (result["applied"], result["unknown_outcome"]) == (1, 0)
    assert CustomerAdjustment.objects.get(pk=adjustment.pk).status == "applied"
    assert len(stripe_balance.create_calls) == 1
    names = {s.func for s in job_schedule_by_name().values()}
    assert ADJUSTMENTS_APPLY_SCHEDULE_FUNC in names


def test_an_unknown_outcome_fails_the_scheduled_run_and_the_next_one_resolves_it(monkeypatch):
    stripe_balance = FakeCustomerBalance().install(monkeypatch)
    adjustment = _approved()
    stripe_balance.fail_next = "timeout_after_create"
    with pytest.raises(JobFailed) as failed:
        apply_customer_adjustments_scheduled()
    assert str(failed.value) == ERR_ADJUSTMENTS_UNKNOWN_OUTCOME.format(count=1, error=ERR_TIMEOUT)
    result = apply_customer_adjustments_scheduled()
    assert result["applied"] == 1
    assert CustomerAdjustment.objects.get(pk=adjustment.pk).status == "applied"
    assert len(stripe_balance.create_calls) == 1  # looked up, not resent
