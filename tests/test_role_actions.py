"""Each demo role (fixtures/groups.json, `manage.py demo_staff`) is offered exactly the
actions it may use on the main pages: a link, button or bulk action shows only when the user
has the permission AND the object allows it. The server-side checks stay (the other tests);
this is what the pages offer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payments.models import Dispute, FraudAlert, Payment, WebhookEvent
from refunds import permissions
from tests.factories import (
    DisputeFactory,
    PaymentFactory,
    PaymentMethodFactory,
    RefundRequestFactory,
)

pytestmark = pytest.mark.django_db

ROLES = ["superuser", "analyst", "senior", "auditor"]
ALL = frozenset(ROLES)
APPROVERS = frozenset({"superuser", "analyst", "senior"})
SENIORS = frozenset({"superuser", "senior"})
NOBODY = frozenset()


@pytest.fixture
def objects():
    call_command("demo_staff", verbosity=0)
    ok = PaymentFactory()
    failed = PaymentFactory(failed=True)
    PaymentMethodFactory(customer=failed.customer, is_default=True)
    disputed = DisputeFactory().payment
    full = PaymentFactory(amount_refunded=5000)
    pending = RefundRequestFactory(payment=PaymentFactory())
    decided = RefundRequestFactory(status="rejected", rejection_reason="duplicate")
    event = WebhookEvent.objects.create(
        stripe_id="evt_roles",
        type="customer.updated",
        created=timezone.now(),
        payload={},
        status=WebhookEvent.Status.FAILED,
    )
    alert = FraudAlert.objects.create(
        payment=PaymentFactory(),
        source=FraudAlert.Source.EARLY_FRAUD_WARNING,
        stripe_id="issfr_roles",
        status=FraudAlert.Status.OPEN,
        created=timezone.now() - timedelta(hours=1),
    )
    dispute = Dispute.objects.get(payment=disputed)
    return {
        "ok": ok,
        "failed": failed,
        "disputed": disputed,
        "full": full,
        "pending": pending,
        "decided": decided,
        "event": event,
        "alert": alert,
        "dispute": dispute,
    }


def _client(role: str) -> Client:
    # The demo logins (demo_staff): "demo" is the superuser.
    username = "demo" if role == "superuser" else role
    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    return client


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def _payment(o, key):
    return reverse("admin:payments_payment_change", args=[o[key].pk])


def _request_link(o, key):
    return f"/admin/payments/payment/{o[key].pk}/request-refund/"


# (what, page url, the marker that shows the action, the roles that must see it)
CASES = [
    (
        "request refund: succeeded",
        lambda o: _payment(o, "ok"),
        lambda o: _request_link(o, "ok"),
        APPROVERS,
    ),
    (
        "request refund: failed",
        lambda o: _payment(o, "failed"),
        lambda o: _request_link(o, "failed"),
        NOBODY,
    ),
    (
        "request refund: disputed",
        lambda o: _payment(o, "disputed"),
        lambda o: _request_link(o, "disputed"),
        NOBODY,
    ),
    (
        "request refund: fully refunded",
        lambda o: _payment(o, "full"),
        lambda o: _request_link(o, "full"),
        NOBODY,
    ),
    (
        "check eligibility",
        lambda o: _payment(o, "ok"),
        lambda o: f"/admin/payments/payment/{o['ok'].pk}/refund-eligibility/",
        ALL,
    ),
    (
        "retry: failed",
        lambda o: _payment(o, "failed"),
        lambda o: 'data-testid="retry-form"',
        SENIORS,
    ),
    ("retry: succeeded", lambda o: _payment(o, "ok"), lambda o: "Retry payment", NOBODY),
    (
        "payments export",
        lambda o: "/admin/payments/payment/",
        lambda o: "Export CSV (streamed",
        APPROVERS,
    ),
    (
        "payments JSON report",
        lambda o: "/admin/payments/payment/",
        lambda o: 'value="json_report"',
        APPROVERS,
    ),
    (
        "queue approve link",
        lambda o: "/admin/refunds/refundrequest/",
        lambda o: f"/{o['pending'].pk}/confirm-approve/",
        APPROVERS,
    ),
    (
        "queue reject link",
        lambda o: "/admin/refunds/refundrequest/",
        lambda o: f"/{o['pending'].pk}/confirm-reject/",
        APPROVERS,
    ),
    (
        "queue bulk approve",
        lambda o: "/admin/refunds/refundrequest/",
        lambda o: 'value="bulk_approve"',
        APPROVERS,
    ),
    (
        "queue bulk reject",
        lambda o: "/admin/refunds/refundrequest/",
        lambda o: 'value="bulk_reject"',
        APPROVERS,
    ),
    (
        "queue export",
        lambda o: "/admin/refunds/refundrequest/",
        lambda o: "Export CSV (streamed",
        APPROVERS,
    ),
    (
        "request page: approve",
        lambda o: reverse("admin:refunds_refundrequest_change", args=[o["pending"].pk]),
        lambda o: "confirm-approve/",
        APPROVERS,
    ),
    (
        "request page: decided",
        lambda o: reverse("admin:refunds_refundrequest_change", args=[o["decided"].pk]),
        lambda o: "confirm-approve/",
        NOBODY,
    ),
    (
        "webhook replay",
        lambda o: reverse("admin:payments_webhookevent_change", args=[o["event"].pk]),
        lambda o: reverse("admin:payments_webhookevent_replay", args=[o["event"].pk]),
        SENIORS,
    ),
    (
        "webhook bulk replay",
        lambda o: "/admin/payments/webhookevent/",
        lambda o: 'value="replay_selected"',
        SENIORS,
    ),
    (
        "fraud resolve",
        lambda o: reverse("admin:payments_fraudalert_change", args=[o["alert"].pk]),
        lambda o: 'data-testid="resolve-form"',
        SENIORS,
    ),
    (
        "fraud assign",
        lambda o: reverse("admin:payments_fraudalert_change", args=[o["alert"].pk]),
        lambda o: reverse("admin:payments_fraudalert_assign", args=[o["alert"].pk]),
        SENIORS,
    ),
    (
        "dispute submit",
        lambda o: reverse("admin:payments_dispute_change", args=[o["dispute"].pk]),
        lambda o: reverse("admin:payments_dispute_submit", args=[o["dispute"].pk]),
        SENIORS,
    ),
    (
        "dispute accept",
        lambda o: reverse("admin:payments_dispute_change", args=[o["dispute"].pk]),
        lambda o: reverse("admin:payments_dispute_accept", args=[o["dispute"].pk]),
        SENIORS,
    ),
]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_offered_exactly_the_actions_it_may_use(role, objects):
    client = _client(role)
    pages: dict[str, str] = {}
    offered, expected = set(), set()
    for what, page, marker, roles in CASES:
        url = page(objects)
        if url not in pages:
            pages[url] = _page(client, url)
        if marker(objects) in pages[url]:
            offered.add(what)
        if role in roles:
            expected.add(what)
    assert offered == expected


@pytest.mark.parametrize("role", ROLES)
def test_what_is_offered_is_what_the_server_allows(role, objects):
    """The links a role is offered open; the ones it is not offered answer 403 (a permission)
    or lead to the page that says why (the object's state)."""
    client = _client(role)
    pending = objects["pending"]
    approve = client.get(f"/admin/refunds/refundrequest/{pending.pk}/confirm-approve/")
    assert approve.status_code == (200 if role in APPROVERS else 403)
    request_refund = client.get(_request_link(objects, "ok"))
    assert request_refund.status_code == (302 if role in APPROVERS else 403)


# --- refusals known before submitting: the reason shown, the button disabled --------------------


def _decision_page(client, refund_request, decision="approve") -> str:
    return _page(client, f"/admin/refunds/refundrequest/{refund_request.pk}/confirm-{decision}/")


def test_own_request_is_refused_on_the_page_with_the_button_disabled(objects):
    analyst = get_user_model().objects.get(username="analyst")
    own = RefundRequestFactory(requested_by=analyst)
    body = _decision_page(_client("analyst"), own)
    assert 'data-testid="confirm-disabled"' in body
    assert permissions.ERR_OWN_REQUEST in body
    assert 'name="confirm"' not in body  # no live submit button
    # Rejecting one's own request is allowed (only approval needs four eyes).
    assert 'name="confirm"' in _decision_page(_client("analyst"), own, "reject")


def test_above_the_senior_limit_analyst_sees_why_and_senior_may_approve(objects, settings):
    settings.REFUND_SENIOR_APPROVAL_ABOVE = {"usd": "100.00"}
    large = RefundRequestFactory(payment=PaymentFactory(amount=50000), amount=20000)
    body = _decision_page(_client("analyst"), large)
    assert 'data-testid="confirm-disabled"' in body
    assert "Refunds above $100.00 need a senior approver." in body
    senior = _decision_page(_client("senior"), large)
    assert 'data-testid="confirm-disabled"' not in senior
    assert 'name="confirm"' in senior


def test_a_request_no_longer_refundable_is_refused_before_the_click(objects):
    # The payment was disputed after the request was made.
    request = objects["pending"]
    Payment.objects.filter(pk=request.payment_id).update(status=Payment.Status.DISPUTED)
    body = _decision_page(_client("senior"), request)
    assert 'data-testid="confirm-disabled"' in body
    from refunds.rules import ERR_PAYMENT_DISPUTED

    assert ERR_PAYMENT_DISPUTED in body


def test_the_page_and_the_service_give_the_same_refusal(objects):
    """One answer: what the page shows before the click is what the service raises after it."""
    from refunds.services import RefundError, refund_request_approve

    analyst = get_user_model().objects.get(username="analyst")
    own = RefundRequestFactory(requested_by=analyst)
    refusal = permissions.decision_refusal(
        user=analyst, refund_request=own, decision="approve", customer_blocked=False
    )
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=own, acting_user=analyst)
    assert str(exc.value) == refusal.message


def test_retry_without_a_customer_is_disabled_with_the_reason(objects):
    from payments.services.payment_retry import ERROR_NO_CUSTOMER

    orphan = PaymentFactory(failed=True, customer=None)
    body = _page(_client("senior"), _payment({"p": orphan}, "p"))
    assert 'data-testid="retry-disabled"' in body
    assert ERROR_NO_CUSTOMER in body
    assert 'data-testid="retry-form"' not in body


def test_the_eligibility_page_says_why_an_auditor_cannot_request(objects):
    body = _page(
        _client("auditor"), reverse("admin:refunds_payment_refund", args=[objects["ok"].pk])
    )
    assert permissions.ERR_NO_REQUEST_PERMISSION in body
    assert "Request a refund" not in body


def test_the_bulk_confirmation_says_which_requests_would_be_refused(objects):
    analyst = get_user_model().objects.get(username="analyst")
    own = RefundRequestFactory(requested_by=analyst)
    other = objects["pending"]
    client = _client("analyst")
    form = {"action": "bulk_approve", "_selected_action": [own.pk, other.pk]}
    body = client.post("/admin/refunds/refundrequest/", form).content.decode()
    assert body.count('data-testid="bulk-refusal"') == 1
    assert permissions.ERR_OWN_REQUEST in body
    assert 'data-testid="bulk-confirm-disabled"' not in body  # one of them can be approved

    form["_selected_action"] = [own.pk]
    body = client.post("/admin/refunds/refundrequest/", form).content.decode()
    assert 'data-testid="bulk-confirm-disabled"' in body  # all would be refused
