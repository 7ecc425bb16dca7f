"""One table of payout and earnings-adjustment decisions, run through the service and through
the API's POST: the same user, objects made the same way, the same outcome (the same message
when refused, the same state after). The rules live once, in payments/payout_rules.py and
payments/earning_adjustment_rules.py, asked by the services under their row locks; this shows
the API adds none and skips none. (The payouts admin's POST views are not on main yet; when
they land, their POST joins this table as the refunds' did in
test_refund_rules_admin_and_api.py.)

The API answers a refusal with a status saying what kind it is: 400 bad input (with the field),
403 a permission or the four-eyes rule, 409 the payout's, adjustment's or balance's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from backoffice.api.tokens import api_token_create
from payments import earning_adjustment_rules as adjustment_rules
from payments import payout_rules
from payments.models import EarningAdjustment, Payout
from payments.services import earning_adjustments as adjustment_services
from payments.services import payouts as payout_services
from tests.api.harness import SchemaCheckedClient
from tests.factories import InstructorFactory
from tests.payouts.conftest import connect, earn, staff  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

OK = None  # no refusal expected
SENIOR_PAYOUT = payout_rules.ERR_SENIOR_NEEDED.format(limit="$5,000.00", amount="$6,000.00")
SENIOR_ADJUSTMENT = adjustment_rules.ERR_SENIOR.format(limit="$500.00")


@dataclass(frozen=True)
class Case:
    name: str
    action: str  # payout: create, approve, cancel, mark_paid, reverse; adjustment: request, ...
    role: str  # a harness role, or "adjuster" (approves adjustments, not large ones)
    message: str | None
    api_status: int
    given: str = ""  # what exists first (see _given)
    amount: int = 5000
    own: bool = False  # the acting user asked for it
    data: dict = field(default_factory=dict)  # the body (and the service's arguments)


CASES = [
    # --- payouts ---
    Case("manual payout", "create", "finance", OK, 201, data={"note": "Early"}),
    Case(
        "manual payout above the available balance",
        "create",
        "finance",
        payout_services.ERR_ABOVE_AVAILABLE.format(available="$200.00", currency="USD"),
        409,
        amount=20_001,
        data={"note": "Early"},
    ),
    Case(
        "manual payout without a note",
        "create",
        "finance",
        payout_services.ERR_NOTE_REQUIRED,
        400,
        data={"note": " "},
    ),
    Case(
        "manual payout of zero",
        "create",
        "senior",
        payout_services.ERR_AMOUNT_NOT_POSITIVE,
        400,
        amount=0,
        data={"note": "x"},
    ),
    Case("approve", "approve", "finance", OK, 200, given="pending", data={"note": "ok"}),
    Case(
        "approve own manual payout",
        "approve",
        "finance",
        payout_rules.ERR_OWN_PAYOUT,
        403,
        given="pending",
        own=True,
    ),
    Case("a run's payout: no requester", "approve", "finance", OK, 200, given="run"),
    Case(
        "approve above the senior limit",
        "approve",
        "finance",
        SENIOR_PAYOUT,
        403,
        given="pending",
        amount=600_000,
    ),
    Case(
        "senior approves above the limit",
        "approve",
        "senior",
        OK,
        200,
        given="pending",
        amount=600_000,
    ),
    Case(
        "approve twice",
        "approve",
        "senior",
        payout_rules.ERR_NOT_PENDING.format(status="approved"),
        409,
        given="approved",
    ),
    Case("cancel", "cancel", "finance", OK, 200, given="approved", data={"reason": "Duplicate"}),
    Case(
        "cancel without a reason",
        "cancel",
        "finance",
        payout_services.ERR_CANCEL_REASON_REQUIRED,
        400,
        given="pending",
        data={"reason": ""},
    ),
    Case(
        "cancel a paid payout",
        "cancel",
        "senior",
        payout_rules.ERR_NOT_CANCELABLE.format(status="paid"),
        409,
        given="paid_bank",
        data={"reason": "Too late"},
    ),
    Case(
        "mark paid",
        "mark_paid",
        "senior",
        OK,
        200,
        given="approved",
        data={"bank_reference": "B-1"},
    ),
    Case(
        "mark paid before approval",
        "mark_paid",
        "senior",
        payout_rules.ERR_NOT_APPROVED_FOR_PAYMENT.format(status="pending approval"),
        409,
        given="pending",
        data={"bank_reference": "B-1"},
    ),
    Case(
        "mark paid a Connect payout",
        "mark_paid",
        "superuser",
        payout_rules.ERR_NOT_BANK_TRANSFER.format(method="Stripe Connect transfer"),
        409,
        given="approved_connect",
        data={"bank_reference": "B-1"},
    ),
    Case(
        "mark paid without the bank's reference",
        "mark_paid",
        "senior",
        payout_services.ERR_BANK_REFERENCE_REQUIRED,
        400,
        given="approved",
        data={"bank_reference": ""},
    ),
    Case(
        "reverse",
        "reverse",
        "senior",
        OK,
        200,
        given="paid_connect",
        data={"amount": 1000, "reason": "Fraud"},
    ),
    Case(
        "reverse a bank transfer",
        "reverse",
        "senior",
        payout_rules.ERR_NOT_REVERSIBLE,
        409,
        given="paid_bank",
        data={"amount": 1000, "reason": "Fraud"},
    ),
    Case(
        "reverse more than is left",
        "reverse",
        "superuser",
        payout_services.ERR_REVERSAL_ABOVE_LEFT.format(left="$50.00"),
        409,
        given="paid_connect",
        data={"amount": 5001, "reason": "Fraud"},
    ),
    # --- earnings adjustments ---
    Case("request", "request", "finance", OK, 201, data={"reason": "Bonus"}),
    Case(
        "request zero",
        "request",
        "finance",
        adjustment_services.ERR_AMOUNT_ZERO,
        400,
        amount=0,
        data={"reason": "Bonus"},
    ),
    Case(
        "request without a reason",
        "request",
        "finance",
        adjustment_services.ERR_REASON_REQUIRED,
        400,
        data={"reason": ""},
    ),
    Case(
        "request in an unknown currency",
        "request",
        "finance",
        adjustment_services.ERR_UNKNOWN_CURRENCY.format(currency="xyz"),
        400,
        data={"reason": "Bonus", "currency": "xyz"},
    ),
    Case("approve an adjustment", "approve_adj", "adjuster", OK, 200, given="adjustment"),
    Case(
        "approve an own adjustment",
        "approve_adj",
        "senior",
        adjustment_rules.ERR_OWN_REQUEST,
        403,
        given="adjustment",
        own=True,
    ),
    Case(
        "approve an adjustment above the senior limit",
        "approve_adj",
        "adjuster",
        SENIOR_ADJUSTMENT,
        403,
        given="adjustment",
        amount=-50_001,
    ),
    Case(
        "senior approves a large debit",
        "approve_adj",
        "senior",
        OK,
        200,
        given="adjustment",
        amount=-50_001,
    ),
    Case(
        "approve a rejected adjustment",
        "approve_adj",
        "senior",
        adjustment_rules.ERR_NOT_PENDING.format(status="rejected"),
        409,
        given="rejected_adjustment",
    ),
    Case(
        "reject without a reason",
        "reject_adj",
        "senior",
        adjustment_services.ERR_REJECTION_NOTE_REQUIRED,
        400,
        given="adjustment",
        data={"reason": " "},
    ),
    Case(
        "reject own (a withdrawal)",
        "reject_adj",
        "senior",
        OK,
        200,
        given="adjustment",
        own=True,
        data={"reason": "My mistake"},
    ),
]
# The body field a 400 names.
FIELDS = {
    payout_services.ERR_NOTE_REQUIRED: "note",
    payout_services.ERR_AMOUNT_NOT_POSITIVE: "amount",
    payout_services.ERR_CANCEL_REASON_REQUIRED: "reason",
    payout_services.ERR_BANK_REFERENCE_REQUIRED: "bank_reference",
    adjustment_services.ERR_AMOUNT_ZERO: "amount",
    adjustment_services.ERR_REASON_REQUIRED: "reason",
    adjustment_services.ERR_UNKNOWN_CURRENCY.format(currency="xyz"): "currency",
    adjustment_services.ERR_REJECTION_NOTE_REQUIRED: "reason",
}


def _adjuster():
    """May approve adjustments, not large ones (no harness role is exactly that)."""
    user = staff(
        "adjuster", "approve_earningadjustment", "view_earningadjustment", "add_earningadjustment"
    )
    issued = api_token_create(
        user=user,
        name="adjuster",
        expires_at=timezone.now() + timedelta(days=1),
        acting_user=user,
    )
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    return user, client


def _given(case: Case, user, other):
    """Fresh objects for one run of `case`; `user` acts, `other` asks when not `own`."""
    asker = user if case.own else other
    instructor = InstructorFactory(
        stripe_account_id=f"acct_{InstructorFactory._meta.model.objects.count()}"
        if case.given in ("approved_connect", "paid_connect")
        else ""
    )
    # $200.00 to pay out, or the payout's amount when it is larger.
    earn(instructor, max(case.amount, 20_000) if case.given else 20_000)
    if case.given in ("", "adjustment", "rejected_adjustment") and case.action in (
        "create",
        "request",
    ):
        return instructor
    if case.given in ("adjustment", "rejected_adjustment"):
        adjustment = adjustment_services.earning_adjustment_request(
            instructor=instructor,
            amount=case.amount,
            currency="usd",
            reason="Bonus",
            acting_user=asker,
        )
        if case.given == "rejected_adjustment":
            adjustment_services.earning_adjustment_reject(
                adjustment=adjustment, acting_user=staff_user("rules-approver"), note="No"
            )
        return adjustment
    if case.given == "run":
        result = payout_services.payout_run_create(acting_user=user)
        return Payout.objects.get(run_id=result.run_id, instructor=instructor)
    payout = payout_services.payout_manual_create(
        instructor=instructor, amount=case.amount, currency="usd", note="Early", acting_user=asker
    )
    approver = staff_user("rules-approver")
    if case.given in ("approved", "approved_connect", "paid_bank", "paid_connect"):
        payout_services.payout_approve(payout=payout, acting_user=approver)
    if case.given == "paid_bank":
        payout_services.payout_mark_paid(payout=payout, bank_reference="B-0", acting_user=approver)
    if case.given == "paid_connect":
        payout_services.payout_process(payout_id=payout.pk)
    return Payout.objects.get(pk=payout.pk)


def staff_user(username):
    """Asks for (and, as another person, decides) what a case needs to exist first."""
    found = get_user_model().objects.filter(username=username).first()
    return found or staff(
        username,
        "add_payout",
        "approve_payout",
        "approve_large_payout",
        "mark_payout_paid",
        "add_earningadjustment",
        "approve_earningadjustment",
    )


def _service(case: Case, user, target) -> str | None:
    data = {"reason": "Bonus", "currency": "usd", **case.data}
    calls = {
        "create": lambda: payout_services.payout_manual_create(
            instructor=target,
            amount=case.amount,
            currency="usd",
            note=data.get("note", ""),
            acting_user=user,
        ),
        "approve": lambda: payout_services.payout_approve(
            payout=target, acting_user=user, note=data.get("note", "")
        ),
        "cancel": lambda: payout_services.payout_cancel(
            payout=target, reason=data["reason"], acting_user=user
        ),
        "mark_paid": lambda: payout_services.payout_mark_paid(
            payout=target, bank_reference=data["bank_reference"], acting_user=user
        ),
        "reverse": lambda: payout_services.payout_reverse(
            payout=target, amount=data["amount"], reason=data["reason"], acting_user=user
        ),
        "request": lambda: adjustment_services.earning_adjustment_request(
            instructor=target,
            amount=case.amount,
            currency=data["currency"],
            reason=data["reason"],
            acting_user=user,
        ),
        "approve_adj": lambda: adjustment_services.earning_adjustment_approve(
            adjustment=target, acting_user=user
        ),
        "reject_adj": lambda: adjustment_services.earning_adjustment_reject(
            adjustment=target, acting_user=user, note=data["reason"]
        ),
    }
    try:
        calls[case.action]()
    except (payout_services.PayoutError, adjustment_services.EarningAdjustmentError) as exc:
        return str(exc)
    return None


def _api(case: Case, client, target):
    data = {"reason": "Bonus", "currency": "usd", **case.data}
    if case.action == "create":
        body = {"instructor": target.pk, "amount": case.amount, "currency": "usd", **case.data}
        return client.post("/api/v1/payouts/", body, format="json")
    if case.action == "request":
        body = {"instructor": target.pk, "amount": case.amount, **data}
        return client.post("/api/v1/earning-adjustments/", body, format="json")
    path = {
        "approve": f"/api/v1/payouts/{target.pk}/approve/",
        "cancel": f"/api/v1/payouts/{target.pk}/cancel/",
        "mark_paid": f"/api/v1/payouts/{target.pk}/mark-paid/",
        "reverse": f"/api/v1/payouts/{target.pk}/reverse/",
        "approve_adj": f"/api/v1/earning-adjustments/{target.pk}/approve/",
        "reject_adj": f"/api/v1/earning-adjustments/{target.pk}/reject/",
    }[case.action]
    return client.post(path, case.data, format="json")


def _state(target):
    if isinstance(target, Payout | EarningAdjustment):
        target.refresh_from_db()
        return (target.status, getattr(target, "amount_reversed", None))
    # Created by the action: what the instructor now has of it.
    return (
        list(target.payouts.values_list("status", "amount")),
        list(target.earning_adjustments.values_list("status", "amount")),
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.usefixtures("connect")
def test_the_service_and_the_api_decide_alike(api_roles, case):
    if case.role == "adjuster":
        user, client = _adjuster()
    else:
        user, client = api_roles.users[case.role], api_roles[case.role]
    other = staff_user("rules-requester")

    by_service = _given(case, user, other)
    message = _service(case, user, by_service)
    assert message == case.message

    by_api = _given(case, user, other)
    response = _api(case, client, by_api)
    assert response.status_code == case.api_status, response.json()
    if case.message is OK:
        assert "error" not in response.json()
    else:
        error = response.json()["error"]
        assert error["message"] == case.message
        expected_fields = {FIELDS[case.message]: [case.message]} if case.api_status == 400 else {}
        assert error["fields"] == expected_fields
        assert (
            error["code"]
            == {
                400: "invalid",
                403: "refused_by_rule"
                if case.message.endswith("(four-eyes rule).")
                else "permission_denied",
                409: "conflict",
            }[case.api_status]
        )
    assert _state(by_api) == _state(by_service)
