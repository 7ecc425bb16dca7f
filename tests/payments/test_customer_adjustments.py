"""Manual customer adjustments (money): requested by one person, applied only when someone else
approves, exactly once through Stripe's customer balance (a fake here; the localstripe tests
use the peer); senior limits per currency; every step audited in its transaction."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.models import AdminAction
from payments import hours
from payments.customer_adjustment_rules import (
    APPROVE,
    ERR_NO_APPROVE_PERMISSION,
    ERR_NO_REQUEST_PERMISSION,
    ERR_NOT_PENDING,
    ERR_OWN_REQUEST,
    ERR_SENIOR,
    ERR_SENIOR_BLOCKED,
    REJECT,
    decision_refusal,
    format_minutes,
)
from payments.models import BalanceEntry, CustomerAdjustment, HourPackage, StudentBalance
from payments.services.customer_adjustments import (
    AUDIT_APPLY,
    AUDIT_APPROVE,
    AUDIT_REJECT,
    AUDIT_REQUEST,
    DUPLICATE_WINDOW_MINUTES,
    ERR_AMOUNT_NOT_POSITIVE,
    ERR_CURRENCY_NOT_CUSTOMERS,
    ERR_DUPLICATE_PENDING,
    ERR_HOURS_NOT_APPLIED,
    ERR_MINUTES_RANGE,
    ERR_REASON_REQUIRED,
    ERR_REJECTION_NOTE_REQUIRED,
    ERR_UNKNOWN_CURRENCY,
    ERR_UNKNOWN_DIRECTION,
    ERR_UNKNOWN_UNIT,
    MAX_MINUTES,
    CustomerAdjustmentError,
    CustomerAdjustmentPermissionError,
    customer_adjustment_apply,
    customer_adjustment_approve,
    customer_adjustment_reject,
    customer_adjustment_request,
    customer_adjustments_apply_approved,
)
from tests.factories import CustomerFactory
from tests.payments.customer_adjustment_support import (
    FakeCustomerBalance,
    approver,
    requester,
    senior,
    staff,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_balance(monkeypatch):
    return FakeCustomerBalance().install(monkeypatch)


@pytest.fixture
def customer():
    return CustomerFactory()


@pytest.fixture
def approve(django_capture_on_commit_callbacks):
    """Approve as the admin does: the apply task runs after commit (inline in the tests)."""

    def run(adjustment, user, note=""):
        with django_capture_on_commit_callbacks(execute=True):
            customer_adjustment_approve(adjustment=adjustment, acting_user=user, note=note)
        adjustment.refresh_from_db()
        return adjustment

    return run


def money(customer, user, amount=2500, currency="usd", direction="credit", reason="Goodwill"):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit="money",
        amount=amount,
        currency=currency,
        reason=reason,
        acting_user=user,
    )


def test_a_credit_applies_once_as_a_negative_stripe_amount(customer, stripe_balance, approve):
    adjustment = money(customer, requester())
    assert adjustment.status == CustomerAdjustment.Status.PENDING
    assert stripe_balance.create_calls == []  # nothing moves before approval
    decider = approver()
    approve(adjustment, decider, note="Tutor no-show")
    assert adjustment.status == CustomerAdjustment.Status.APPLIED
    assert (adjustment.decided_by, adjustment.decision_note) == (decider, "Tutor no-show")
    [call] = stripe_balance.create_calls
    # Stripe's balance is what the customer owes: a credit goes out negative.
    assert call == {
        "customer_id": customer.stripe_id,
        "amount": -2500,
        "key": f"customer_adjustment:{adjustment.pk}",
    }
    [txn] = stripe_balance.transactions
    assert txn.metadata == {"customer_adjustment_id": str(adjustment.pk)}
    assert (adjustment.stripe_balance_transaction_id, adjustment.stripe_ending_balance) == (
        txn.id,
        -2500,
    )
    assert adjustment.idempotency_key == f"customer_adjustment:{adjustment.pk}"
    # Applying again (a retried task, the safety net) does nothing.
    assert customer_adjustment_apply(adjustment_id=adjustment.pk).status == "applied"
    assert customer_adjustments_apply_approved()["candidates"] == 0
    assert len(stripe_balance.create_calls) == 1


def test_a_debit_goes_out_positive(customer, stripe_balance, approve):
    adjustment = approve(money(customer, requester(), 700, direction="debit"), approver())
    assert adjustment.status == "applied"
    assert stripe_balance.create_calls[0]["amount"] == 700
    assert adjustment.signed_amount == -700


def test_every_step_is_audited_with_amount_in_the_customers_favour(
    customer, stripe_balance, approve
):
    user, decider = requester(), approver()
    adjustment = approve(money(customer, user, 700, direction="debit"), decider, note="ok")
    rows = list(AdminAction.objects.order_by("pk"))
    assert [(r.action, r.actor, r.amount, r.currency, r.result) for r in rows] == [
        (AUDIT_REQUEST, user, -700, "usd", "success"),
        (AUDIT_APPROVE, decider, -700, "usd", "success"),
        (AUDIT_APPLY, None, -700, "usd", "success"),
    ]
    assert rows[0].reason == "Goodwill"
    assert rows[1].details["idempotency_key"] == adjustment.idempotency_key
    assert (
        rows[2].details["stripe_balance_transaction_id"] == adjustment.stripe_balance_transaction_id
    )
    assert {r.target_id for r in rows} == {str(adjustment.pk)}


def test_history_keeps_each_state(customer, stripe_balance, approve):
    adjustment = approve(money(customer, requester()), approver())
    statuses = list(adjustment.history.order_by("history_id").values_list("status", flat=True))
    assert statuses == ["pending", "approved", "applying", "applied"]


# --- four-eyes, permissions, senior limits --------------------------------------------------


def test_the_requester_cannot_approve_but_may_withdraw(customer, stripe_balance):
    user = approver()
    adjustment = money(customer, user)
    with pytest.raises(CustomerAdjustmentError) as refused:
        customer_adjustment_approve(adjustment=adjustment, acting_user=user)
    assert str(refused.value) == ERR_OWN_REQUEST
    customer_adjustment_reject(adjustment=adjustment, acting_user=user, note="Typo")
    adjustment.refresh_from_db()
    assert adjustment.status == "rejected"
    assert stripe_balance.create_calls == []


def test_permissions_are_checked(customer):
    nobody = staff("view_customeradjustment")
    with pytest.raises(CustomerAdjustmentPermissionError) as refused:
        money(customer, nobody)
    assert str(refused.value) == ERR_NO_REQUEST_PERMISSION
    adjustment = money(customer, requester())
    with pytest.raises(CustomerAdjustmentPermissionError) as refused:
        customer_adjustment_approve(adjustment=adjustment, acting_user=requester())
    assert str(refused.value) == ERR_NO_APPROVE_PERMISSION
    with pytest.raises(CustomerAdjustmentPermissionError):
        customer_adjustment_reject(adjustment=adjustment, acting_user=nobody, note="no")


@pytest.mark.parametrize(
    ("amount", "currency", "needs_senior"),
    [
        (10000, "usd", False),  # $100.00: the limit itself is allowed
        (10001, "usd", True),
        (15000, "jpy", False),  # ¥15,000, not 150.00 of anything
        (15001, "jpy", True),
        (8000, "gbp", False),
        (8001, "gbp", True),
        (1, "chf", True),  # a currency without a configured limit: always a senior
    ],
)
def test_senior_limit_is_per_currency(customer, amount, currency, needs_senior):
    adjustment = money(customer, requester(), amount, currency)
    refusal = decision_refusal(user=approver(), adjustment=adjustment, decision=APPROVE)
    if needs_senior:
        assert refusal is not None and refusal.permission
        assert refusal.message.startswith(ERR_SENIOR.split("{")[0])
    else:
        assert refusal is None
    assert decision_refusal(user=senior(), adjustment=adjustment, decision=APPROVE) is None
    # Rejecting needs no senior.
    assert decision_refusal(user=approver(), adjustment=adjustment, decision=REJECT) is None


def test_the_senior_message_names_the_limit_in_the_currency(customer):
    adjustment = money(customer, requester(), 10001)
    refusal = decision_refusal(user=approver(), adjustment=adjustment, decision=APPROVE)
    assert refusal.message == ERR_SENIOR.format(limit="$100.00")


def test_hours_senior_limit_in_minutes(customer, settings):
    settings.CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE_MINUTES = 600
    within = customer_adjustment_request(
        customer=customer,
        direction="credit",
        unit="hours",
        minutes=600,
        reason="Make-up lessons",
        acting_user=requester(),
    )
    above = customer_adjustment_request(
        customer=customer,
        direction="debit",
        unit="hours",
        minutes=601,
        reason="Hours granted twice",
        acting_user=requester(),
    )
    assert decision_refusal(user=approver(), adjustment=within, decision=APPROVE) is None
    refusal = decision_refusal(user=approver(), adjustment=above, decision=APPROVE)
    assert refusal.message == ERR_SENIOR.format(limit="10 h") and refusal.permission
    assert decision_refusal(user=senior(), adjustment=above, decision=APPROVE) is None


def test_a_credit_to_a_blocked_customer_needs_a_senior(customer):
    customer.blocked_at = timezone.now()
    customer.save()
    credit = money(customer, requester(), 100)
    debit = money(customer, requester(), 100, direction="debit")
    refusal = decision_refusal(user=approver(), adjustment=credit, decision=APPROVE)
    assert refusal.message == ERR_SENIOR_BLOCKED
    assert decision_refusal(user=approver(), adjustment=debit, decision=APPROVE) is None


def test_the_senior_limit_is_asked_again_by_the_service(customer, stripe_balance):
    adjustment = money(customer, requester(), 10001)
    with pytest.raises(CustomerAdjustmentPermissionError):
        customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    adjustment.refresh_from_db()
    assert adjustment.status == "pending" and not stripe_balance.create_calls


def test_only_pending_adjustments_are_decided(customer, stripe_balance, approve):
    adjustment = approve(money(customer, requester()), approver())
    for decide in (customer_adjustment_approve, customer_adjustment_reject):
        with pytest.raises(CustomerAdjustmentError) as refused:
            decide(adjustment=adjustment, acting_user=senior(), note="again")
        assert str(refused.value) == ERR_NOT_PENDING.format(status="applied")
    assert len(stripe_balance.create_calls) == 1


def test_rejecting_needs_a_note_and_never_applies(customer, stripe_balance):
    adjustment = money(customer, requester())
    decider = approver()
    with pytest.raises(CustomerAdjustmentError) as refused:
        customer_adjustment_reject(adjustment=adjustment, acting_user=decider, note="  ")
    assert str(refused.value) == ERR_REJECTION_NOTE_REQUIRED
    customer_adjustment_reject(adjustment=adjustment, acting_user=decider, note="Not owed")
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decision_note, adjustment.decided_by) == (
        "rejected",
        "Not owed",
        decider,
    )
    assert AdminAction.objects.filter(action=AUDIT_REJECT, reason="Not owed").count() == 1
    assert customer_adjustments_apply_approved()["candidates"] == 0
    assert stripe_balance.create_calls == []


# --- the request's checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"amount": 0}, ERR_AMOUNT_NOT_POSITIVE),
        ({"amount": -100}, ERR_AMOUNT_NOT_POSITIVE),
        ({"amount": 12.5}, ERR_AMOUNT_NOT_POSITIVE),
        ({"amount": True}, ERR_AMOUNT_NOT_POSITIVE),
        ({"currency": "xxx"}, ERR_UNKNOWN_CURRENCY.format(currency="xxx")),
        ({"reason": "   "}, ERR_REASON_REQUIRED),
        ({"direction": "sideways"}, ERR_UNKNOWN_DIRECTION),
        ({"unit": "points"}, ERR_UNKNOWN_UNIT),
        ({"unit": "hours", "minutes": 0}, ERR_MINUTES_RANGE.format(maximum=MAX_MINUTES)),
        (
            {"unit": "hours", "minutes": MAX_MINUTES + 1},
            ERR_MINUTES_RANGE.format(maximum=MAX_MINUTES),
        ),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(customer, params, message):
    values = {
        "direction": "credit",
        "unit": "money",
        "amount": 500,
        "currency": "usd",
        "reason": "Goodwill",
        **params,
    }
    with pytest.raises(CustomerAdjustmentError) as refused:
        customer_adjustment_request(customer=customer, acting_user=requester(), **values)
    assert str(refused.value) == message
    assert not CustomerAdjustment.objects.exists()
    assert not AdminAction.objects.exists()


def test_money_in_another_currency_than_the_stripe_balance_is_refused(customer):
    customer.stripe_balance, customer.stripe_balance_currency = -500, "eur"
    customer.save()
    with pytest.raises(CustomerAdjustmentError) as refused:
        money(customer, requester(), 500, "usd")
    assert str(refused.value) == ERR_CURRENCY_NOT_CUSTOMERS.format(balance_currency="EUR")
    assert money(customer, requester(), 500, "eur").currency == "eur"


def test_hours_requests_store_minutes_only(customer):
    adjustment = customer_adjustment_request(
        customer=customer,
        direction="debit",
        unit="hours",
        minutes=90,
        amount=999,  # ignored for hours
        currency="usd",
        reason="Lesson not deducted",
        acting_user=requester(),
    )
    assert (adjustment.minutes, adjustment.amount, adjustment.currency) == (90, 0, "")
    assert adjustment.signed_minutes == -90
    assert format_minutes(90) == "1 h 30 min"
    row = AdminAction.objects.get()
    assert (row.amount, row.details["minutes"]) == (None, -90)


# --- exactly once through Stripe -------------------------------------------------------------


def test_a_timeout_after_stripe_acted_is_looked_up_on_resume(customer, stripe_balance, approve):
    stripe_balance.fail_next = "timeout_after_create"
    adjustment = approve(money(customer, requester()), approver())
    assert adjustment.status == "applying"
    assert adjustment.applying_started_at is None  # claim released: resumable at once
    assert adjustment.failure_message
    counts = customer_adjustments_apply_approved()
    assert (counts["applied"], counts["unknown_outcome"]) == (1, 0)
    adjustment.refresh_from_db()
    assert adjustment.status == "applied" and adjustment.attempts == 2
    # The resume looked the transaction up instead of sending it again.
    assert len(stripe_balance.create_calls) == 1 and stripe_balance.list_calls == 1
    assert adjustment.stripe_balance_transaction_id == stripe_balance.transactions[0].id


def test_a_resume_that_finds_nothing_sends_the_same_key(customer, stripe_balance, approve):
    adjustment = money(customer, requester())
    # Approved, then the worker died before calling Stripe (its lease ran out).
    approve_without_task = customer_adjustment_approve(
        adjustment=adjustment, acting_user=approver()
    )
    CustomerAdjustment.objects.filter(pk=adjustment.pk).update(
        status="applying", attempts=1, applying_started_at=timezone.now() - timedelta(hours=1)
    )
    customer_adjustments_apply_approved()
    adjustment.refresh_from_db()
    assert adjustment.status == "applied"
    assert [c["key"] for c in stripe_balance.create_calls] == [approve_without_task.idempotency_key]


def test_a_live_claim_is_left_alone(customer, stripe_balance):
    adjustment = money(customer, requester())
    customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    CustomerAdjustment.objects.filter(pk=adjustment.pk).update(
        status="applying", attempts=1, applying_started_at=timezone.now()
    )
    assert customer_adjustment_apply(adjustment_id=adjustment.pk).status == "applying"
    assert customer_adjustments_apply_approved()["candidates"] == 0
    assert stripe_balance.create_calls == []


def test_stripe_saying_no_ends_it_failed_and_audited(customer, stripe_balance, approve):
    stripe_balance.fail_next = "refuse"
    adjustment = approve(money(customer, requester()), approver())
    assert (adjustment.status, adjustment.failure_code) == ("failed", "resource_missing")
    failure = AdminAction.objects.get(action=AUDIT_APPLY)
    assert failure.result == "failure" and failure.actor is None
    # Failed is final: the safety net leaves it.
    assert customer_adjustments_apply_approved()["candidates"] == 0


def test_system_requests_need_no_user(customer):
    adjustment = money(customer, None)
    assert adjustment.requested_by is None
    assert AdminAction.objects.get().actor is None
    # ...and anyone with the permission may approve them.
    assert decision_refusal(user=approver(), adjustment=adjustment, decision=APPROVE) is None


# --- hours ------------------------------------------------------------------------------------


def hours_request(customer, user, minutes=90, direction="credit"):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit="hours",
        minutes=minutes,
        reason="Make-up lesson",
        acting_user=user,
    )


def test_approved_hours_are_one_ledger_entry_applied_at_once(customer, stripe_balance):
    adjustment = hours_request(customer, requester(), 90)
    decider = approver()
    customer_adjustment_approve(adjustment=adjustment, acting_user=decider, note="ok")
    adjustment.refresh_from_db()
    assert adjustment.status == "applied" and adjustment.applied_at is not None
    entry = BalanceEntry.objects.get()
    assert (entry.kind, entry.minutes, entry.reference) == (
        BalanceEntry.Kind.ADJUSTMENT,
        90,
        f"customer_adjustment:{adjustment.pk}",
    )
    assert adjustment.balance_entry == entry
    assert StudentBalance.objects.get(customer=customer).minutes == 90
    assert AdminAction.objects.get(action=AUDIT_APPROVE).details["entry"] == entry.reference
    assert stripe_balance.create_calls == []  # hours never touch Stripe
    # Nothing left for the money path to do, and approving again is refused.
    assert customer_adjustment_apply(adjustment_id=adjustment.pk).status == "applied"
    with pytest.raises(CustomerAdjustmentError):
        customer_adjustment_approve(adjustment=adjustment, acting_user=senior())
    assert BalanceEntry.objects.count() == 1


def test_a_debit_draws_from_the_oldest_package_first(customer):
    now = timezone.now()
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=60,
        kind=BalanceEntry.Kind.PURCHASE,
        reference="test:late",
        expires_at=now + timedelta(days=90),
    )
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=60,
        kind=BalanceEntry.Kind.PURCHASE,
        reference="test:soon",
        expires_at=now + timedelta(days=10),
    )
    adjustment = hours_request(customer, requester(), 45, direction="debit")
    customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    adjustment.refresh_from_db()
    assert adjustment.balance_entry.minutes == -45
    left = dict(
        HourPackage.objects.filter(balance__customer=customer).values_list(
            "expires_at__date", "remaining"
        )
    )
    assert left == {(now + timedelta(days=10)).date(): 15, (now + timedelta(days=90)).date(): 60}


def test_a_debit_above_the_hours_left_is_refused_and_changes_nothing(customer):
    hours.credit_minutes(
        customer_id=customer.pk, minutes=30, kind=BalanceEntry.Kind.PURCHASE, reference="test:1"
    )
    adjustment = hours_request(customer, requester(), 45, direction="debit")
    with pytest.raises(CustomerAdjustmentError) as refused:
        customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    assert str(refused.value).startswith(ERR_HOURS_NOT_APPLIED.split("{")[0])
    adjustment.refresh_from_db()
    assert adjustment.status == "pending" and adjustment.decided_by is None
    assert StudentBalance.objects.get(customer=customer).minutes == 30
    assert not AdminAction.objects.filter(action=AUDIT_APPROVE).exists()
    # It can still be rejected.
    customer_adjustment_reject(adjustment=adjustment, acting_user=approver(), note="Too much")


def test_an_entry_already_written_under_the_reference_is_linked_not_doubled(customer):
    adjustment = hours_request(customer, requester(), 60)
    # A crash after the ledger wrote, before the adjustment row recorded it, cannot happen
    # (one transaction); a replay of the reference answers None: the entry is still linked.
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=60,
        kind=BalanceEntry.Kind.ADJUSTMENT,
        reference=f"customer_adjustment:{adjustment.pk}",
    )
    customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    adjustment.refresh_from_db()
    assert BalanceEntry.objects.count() == 1
    assert adjustment.balance_entry == BalanceEntry.objects.get()
    assert StudentBalance.objects.get(customer=customer).minutes == 60


def test_a_double_submit_is_refused_while_the_first_request_is_pending(customer):
    user = requester()
    first = money(customer, user)
    with pytest.raises(CustomerAdjustmentError) as refused:
        money(customer, user)
    assert str(refused.value) == ERR_DUPLICATE_PENDING.format(
        minutes=DUPLICATE_WINDOW_MINUTES, pk=first.pk
    )
    # Anything else is a new request: another amount, another requester, or later on.
    money(customer, user, amount=2600)
    money(customer, requester())
    CustomerAdjustment.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(minutes=DUPLICATE_WINDOW_MINUTES + 1)
    )
    money(customer, user)
    assert CustomerAdjustment.objects.filter(customer=customer).count() == 4
