"""Manual earnings adjustments: requested by one person, applied (one entry, exactly once)
only when someone else approves; large ones need a senior; everything audited."""

import pytest
from django.contrib.auth.models import Permission

from backoffice.models import AdminAction
from payments.earning_adjustment_rules import (
    ERR_NO_APPROVE_PERMISSION,
    ERR_NO_REQUEST_PERMISSION,
    ERR_NOT_PENDING,
    ERR_OWN_REQUEST,
    ERR_SENIOR,
)
from payments.earnings_selectors import earning_balances
from payments.models import EarningAdjustment, EarningEntry
from payments.services.earning_adjustments import (
    AUDIT_APPROVE,
    AUDIT_REJECT,
    AUDIT_REQUEST,
    ERR_AMOUNT_ZERO,
    ERR_REASON_REQUIRED,
    ERR_REJECTION_NOTE_REQUIRED,
    ERR_UNKNOWN_CURRENCY,
    EarningAdjustmentError,
    EarningAdjustmentPermissionError,
    earning_adjustment_approve,
    earning_adjustment_reject,
    earning_adjustment_request,
)
from tests.factories import InstructorFactory, UserFactory

pytestmark = pytest.mark.django_db


def staff(*codenames: str):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def requester():
    return staff("add_earningadjustment")


@pytest.fixture
def approver():
    return staff("approve_earningadjustment")


@pytest.fixture
def senior():
    return staff("approve_earningadjustment", "approve_large_payout")


@pytest.fixture
def instructor():
    return InstructorFactory()


def _request(instructor, requester, amount=2500, currency="usd", reason="Missed session bonus"):
    return earning_adjustment_request(
        instructor=instructor,
        amount=amount,
        currency=currency,
        reason=reason,
        acting_user=requester,
    )


def test_approval_applies_one_entry_available_at_once(instructor, requester, approver):
    adjustment = _request(instructor, requester)
    assert adjustment.status == EarningAdjustment.Status.PENDING
    assert not EarningEntry.objects.exists()  # nothing counts before approval
    earning_adjustment_approve(adjustment=adjustment, acting_user=approver, note="ok")
    adjustment.refresh_from_db()
    assert adjustment.status == EarningAdjustment.Status.APPLIED
    assert (adjustment.decided_by, adjustment.decision_note) == (approver, "ok")
    entry = EarningEntry.objects.get()
    assert (entry.kind, entry.reference, entry.amount, entry.adjustment) == (
        EarningEntry.Kind.ADJUSTMENT,
        f"adjustment:{adjustment.pk}",
        2500,
        adjustment,
    )
    assert entry.available_at == entry.occurred_at
    balance = earning_balances()[(instructor.pk, "usd")]
    assert (balance.balance, balance.available) == (2500, 2500)
    actions = list(AdminAction.objects.order_by("pk").values_list("action", "actor", "amount"))
    assert actions == [(AUDIT_REQUEST, requester.pk, 2500), (AUDIT_APPROVE, approver.pk, 2500)]


def test_a_second_approval_writes_nothing(instructor, requester, approver, senior):
    adjustment = _request(instructor, requester)
    earning_adjustment_approve(adjustment=adjustment, acting_user=approver)
    with pytest.raises(EarningAdjustmentError, match="this one is approved and applied"):
        earning_adjustment_approve(adjustment=adjustment, acting_user=senior)
    assert EarningEntry.objects.count() == 1


def test_a_debit_lowers_the_balance(instructor, requester, approver):
    adjustment = _request(instructor, requester, amount=-1200, reason="Duplicate payout")
    earning_adjustment_approve(adjustment=adjustment, acting_user=approver)
    assert earning_balances()[(instructor.pk, "usd")].available == -1200


def test_four_eyes_the_requester_cannot_approve(instructor):
    both = staff("add_earningadjustment", "approve_earningadjustment", "approve_large_payout")
    adjustment = _request(instructor, both)
    with pytest.raises(EarningAdjustmentError) as error:
        earning_adjustment_approve(adjustment=adjustment, acting_user=both)
    assert str(error.value) == ERR_OWN_REQUEST
    assert not isinstance(error.value, EarningAdjustmentPermissionError)
    assert not EarningEntry.objects.exists()
    # ...but may withdraw it.
    earning_adjustment_reject(adjustment=adjustment, acting_user=both, note="Typed it twice")
    assert EarningAdjustment.objects.get().status == EarningAdjustment.Status.REJECTED


def test_above_the_senior_limit_needs_a_senior(instructor, requester, approver, senior):
    # EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE: usd=500 -> 500.00; credits and debits alike.
    for amount in (50_001, -50_001):
        adjustment = _request(instructor, requester, amount=amount)
        with pytest.raises(EarningAdjustmentPermissionError) as error:
            earning_adjustment_approve(adjustment=adjustment, acting_user=approver)
        assert str(error.value) == ERR_SENIOR.format(limit="$500.00")
        earning_adjustment_approve(adjustment=adjustment, acting_user=senior)
    at_limit = _request(instructor, requester, amount=50_000)
    earning_adjustment_approve(adjustment=at_limit, acting_user=approver)
    assert EarningEntry.objects.count() == 3


def test_the_senior_limit_is_per_currency(instructor, requester, approver):
    # jpy=75000: 80,000 yen is above it, though 80000 "cents" would not be above usd's.
    adjustment = _request(instructor, requester, amount=80_000, currency="jpy")
    with pytest.raises(EarningAdjustmentPermissionError):
        earning_adjustment_approve(adjustment=adjustment, acting_user=approver)


def test_permissions(instructor, requester, approver):
    with pytest.raises(EarningAdjustmentPermissionError) as error:
        _request(instructor, approver)
    assert str(error.value) == ERR_NO_REQUEST_PERMISSION
    adjustment = _request(instructor, requester)
    other_requester = staff("add_earningadjustment")
    with pytest.raises(EarningAdjustmentPermissionError) as error:
        earning_adjustment_approve(adjustment=adjustment, acting_user=other_requester)
    assert str(error.value) == ERR_NO_APPROVE_PERMISSION
    with pytest.raises(EarningAdjustmentPermissionError):
        earning_adjustment_reject(adjustment=adjustment, acting_user=other_requester, note="no")
    assert EarningAdjustment.objects.get().status == EarningAdjustment.Status.PENDING


@pytest.mark.parametrize(
    ("amount", "currency", "reason", "message"),
    [
        (0, "usd", "x", ERR_AMOUNT_ZERO),
        (100, "xyz", "x", ERR_UNKNOWN_CURRENCY.format(currency="xyz")),
        (100, "usd", "   ", ERR_REASON_REQUIRED),
    ],
)
def test_bad_requests_are_refused(instructor, requester, amount, currency, reason, message):
    with pytest.raises(EarningAdjustmentError) as error:
        _request(instructor, requester, amount=amount, currency=currency, reason=reason)
    assert str(error.value) == message
    assert not EarningAdjustment.objects.exists()
    assert not AdminAction.objects.exists()


def test_rejection_needs_a_reason_and_applies_nothing(instructor, requester, approver):
    adjustment = _request(instructor, requester)
    with pytest.raises(EarningAdjustmentError) as error:
        earning_adjustment_reject(adjustment=adjustment, acting_user=approver, note=" ")
    assert str(error.value) == ERR_REJECTION_NOTE_REQUIRED
    earning_adjustment_reject(adjustment=adjustment, acting_user=approver, note="No evidence")
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decision_note) == ("rejected", "No evidence")
    assert not EarningEntry.objects.exists()
    assert AdminAction.objects.filter(action=AUDIT_REJECT, reason="No evidence").exists()
    with pytest.raises(EarningAdjustmentError) as error:
        earning_adjustment_approve(adjustment=adjustment, acting_user=approver)
    assert str(error.value) == ERR_NOT_PENDING.format(status="rejected")
