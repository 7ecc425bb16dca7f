"""One table of refund decisions, run through the admin's POST and through the API's POST:
the same user, the same objects, the same outcome (the same message when refused, the same
state after). The rules live once, in refunds.services; this shows no door skips one.

The API answers a refusal with a status that says what kind it is (400 bad input, 403 a
permission or a rule about who decides, 409 the state); the admin shows the message."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from backoffice.models import AdminAction
from payments.models import Payment
from refunds import rules, services
from refunds.models import RefundRequest
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db

OK = None  # no refusal expected


@dataclass(frozen=True)
class Case:
    name: str
    action: str  # approve, reject, create
    role: str  # who acts (tests/api/harness.py roles)
    message: str | None  # the refusal, or OK
    api_status: int
    request: dict = field(default_factory=dict)  # RefundRequestFactory kwargs
    payment: dict = field(default_factory=dict)  # PaymentFactory kwargs
    own: bool = False  # the request was made by the acting user
    blocked: bool = False  # the payment's customer is blocked
    data: dict = field(default_factory=dict)  # the POST body (amounts in minor units)


SENIOR_LIMIT = "Refunds above $500.00 need a senior approver."
CASES = [
    Case("approve", "approve", "finance", OK, 200, data={"note": "ok"}),
    Case("approve own request", "approve", "finance", services.ERR_OWN_REQUEST, 403, own=True),
    Case(
        "approve twice",
        "approve",
        "finance",
        services.ERR_NOT_PENDING.format(status="approved"),
        409,
        request={"status": RefundRequest.Status.APPROVED},
    ),
    Case(
        "approve a rejected request",
        "approve",
        "senior",
        services.ERR_NOT_PENDING.format(status="rejected"),
        409,
        request={"status": RefundRequest.Status.REJECTED},
    ),
    Case(
        "approve above the senior limit",
        "approve",
        "finance",
        SENIOR_LIMIT,
        403,
        request={"amount": 60000},
        payment={"amount": 100000},
    ),
    Case(
        "senior approves above the limit",
        "approve",
        "senior",
        OK,
        200,
        request={"amount": 60000},
        payment={"amount": 100000},
    ),
    Case(
        "approve for a blocked customer",
        "approve",
        "finance",
        rules.ERR_NEEDS_SENIOR_BLOCKED,
        403,
        blocked=True,
    ),
    Case("senior approves for a blocked customer", "approve", "senior", OK, 200, blocked=True),
    Case(
        "approve on a disputed payment",
        "approve",
        "finance",
        rules.ERR_PAYMENT_DISPUTED,
        409,
        payment={"status": Payment.Status.DISPUTED},
    ),
    Case("auditor approves", "approve", "auditor", "permission", 403),
    Case("reject", "reject", "finance", OK, 200, data={"reason": "Duplicate"}),
    Case(
        "reject without a reason",
        "reject",
        "finance",
        services.ERR_REJECTION_REASON_REQUIRED,
        400,
        data={"reason": "   "},
    ),
    Case("create", "create", "finance", OK, 201, data={"amount": 1000}),
    Case(
        "create above the refundable amount",
        "create",
        "finance",
        rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(amount="$60.00", refundable="$50.00"),
        409,
        data={"amount": 6000},
    ),
    Case(
        "create on a failed payment",
        "create",
        "finance",
        rules.ERR_PAYMENT_FAILED,
        409,
        payment={"failed": True},
        data={"amount": 1000},
    ),
    Case(
        "create in another currency",
        "create",
        "finance",
        rules.ERR_CURRENCY_MISMATCH.format(payment_currency="USD", currency="EUR"),
        400,
        data={"amount": 1000, "currency": "eur"},
    ),
    Case(
        "create a zero refund",
        "create",
        "finance",
        rules.ERR_AMOUNT_NOT_POSITIVE,
        400,
        data={"amount": 0},
    ),
    Case("auditor creates", "create", "auditor", "permission", 403, data={"amount": 1000}),
]


def _objects(case: Case, api_roles):
    user = api_roles.users[case.role]
    payment = PaymentFactory(**case.payment)
    if case.blocked:
        payment.customer.blocked_at = timezone.now()
        payment.customer.block_reason = "chargebacks"
        payment.customer.save()
    if case.action == "create":
        return user, payment, None
    requested_by = user if case.own else api_roles.users["superuser"]
    row = RefundRequestFactory(payment=payment, requested_by=requested_by, **case.request)
    return user, payment, row


def _state(payment, row):
    """What a refusal must leave as it was: the request, the payment's requests, the audit."""
    return (
        None if row is None else RefundRequest.objects.get(pk=row.pk).status,
        RefundRequest.objects.filter(payment=payment).count(),
        AdminAction.objects.count(),
    )


def _admin_post(client, case: Case, payment, row):
    data = dict(case.data)
    if case.action == "create":
        amount = Decimal(data.pop("amount")) / 100
        data = {"reason": "requested_by_customer", **data, "amount": str(amount)}
        url = reverse("admin:refunds_payment_refund", args=[payment.pk])
        return client.post(url, data)
    data.setdefault("note" if case.action == "approve" else "reason", "x")
    url = reverse(f"admin:refunds_refundrequest_{case.action}", args=[row.pk])
    return client.post(url, data, follow=True)


def _admin_refusal(response) -> str | None:
    """The refusal the admin showed: 'permission' (403), an error message, or None."""
    if response.status_code == 403:
        return "permission"
    errors = [str(m) for m in response.wsgi_request._messages if m.level_tag == "error"]
    if errors:
        return errors[0]
    if response.status_code == 400:
        body = response.content.decode()
        # The form shows the service's message (HTML-escaped as a page is).
        found = [case.message for case in CASES if case.message and escape(case.message) in body]
        return found[0] if found else "form error"
    return None


def _api_post(client, case: Case, payment, row):
    if case.action == "create":
        return client.post(
            "/api/v1/refund-requests/", {"payment": payment.pk, **case.data}, format="json"
        )
    data = dict(case.data)
    data.setdefault("note" if case.action == "approve" else "reason", "x")
    return client.post(f"/api/v1/refund-requests/{row.pk}/{case.action}/", data, format="json")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_admin_applies_the_rule(api_roles, case):
    user, payment, row = _objects(case, api_roles)
    before = _state(payment, row)
    client = Client()  # the admin's forms: form-encoded, a session
    client.force_login(user)
    response = _admin_post(client, case, payment, row)
    refusal = _admin_refusal(response)
    assert refusal == case.message
    if case.message is not None:
        assert _state(payment, row) == before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_api_applies_the_same_rule(api_roles, case):
    _user, payment, row = _objects(case, api_roles)
    before = _state(payment, row)
    response = _api_post(api_roles[case.role], case, payment, row)
    assert response.status_code == case.api_status, response.json()
    if case.message is None:
        return
    error = response.json()["error"]
    if case.message != "permission":
        assert error["message"] == case.message
    assert _state(payment, row) == before


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.message is None], ids=lambda case: case.name
)
def test_admin_and_api_leave_the_same_state(api_roles, case):
    """The accepted cases end in the same request status and audit action either way."""
    client = Client()
    outcomes = []
    for door in ("admin", "api"):
        user, payment, row = _objects(case, api_roles)
        if door == "admin":
            client.force_login(user)
            _admin_post(client, case, payment, row)
        else:
            _api_post(api_roles[case.role], case, payment, row)
        request_row = RefundRequest.objects.filter(payment=payment).get()
        audit = AdminAction.objects.filter(target_id=str(request_row.pk)).latest("id")
        outcomes.append((request_row.status, audit.action, audit.actor_id, request_row.amount))
    assert outcomes[0] == outcomes[1]
