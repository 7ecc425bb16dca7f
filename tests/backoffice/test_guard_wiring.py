"""Every money-moving POST of the admin and the API passes the money-action guard: a stale
second factor is sent to the step-up page (the admin) or answered 403 step_up_required (an
API session) and nothing happens; an API token is never stepped up; the rate limits and the
bulk maximum answer with when to try again, audited; a 429 is not kept for its
Idempotency-Key."""

import itertools
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice import guard
from backoffice.api.tokens import api_token_create
from backoffice.guard import ERR_BULK_TOO_MANY, ERR_STEP_UP
from backoffice.models import AdminAction
from backoffice.second_factor import VERIFIED_AT_SESSION_KEY
from payments import gateway
from payments.models import CustomerAdjustment, Dispute, EarningAdjustment, Payment, Payout
from payments.services.customer_adjustments import customer_adjustment_request
from payments.services.earning_adjustments import earning_adjustment_request
from refunds.models import RefundRequest
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    InstructorFactory,
    PaymentFactory,
    RefundRequestFactory,
    UserFactory,
)
from tests.payments.payout_support import entry, payout
from tests.refunds.conftest import FakeStripe

pytestmark = pytest.mark.django_db

STEP_UP = reverse("step_up")
_accounts = itertools.count(1)


@pytest.fixture
def fake_stripe(monkeypatch):
    """Refunds 'made' in memory (tests/refunds/conftest.py's recording fake)."""
    fake = FakeStripe()
    monkeypatch.setattr(gateway, "stripe_refund_create", fake.stripe_refund_create)
    monkeypatch.setattr(gateway, "stripe_refund_list", fake.stripe_refund_list)
    return fake


@pytest.fixture
def boss(settings):
    settings.TWO_FACTOR_REQUIRED = False
    user = UserFactory(username="boss-2fa", is_superuser=True)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


def session_client(user, *, verified_minutes_ago=None) -> Client:
    client = Client(REMOTE_ADDR="198.51.100.4")
    client.force_login(user)
    if verified_minutes_ago is not None:
        session = client.session
        session[VERIFIED_AT_SESSION_KEY] = (
            timezone.now() - timedelta(minutes=verified_minutes_ago)
        ).timestamp()
        session.save()
    return client


def _requester():
    return UserFactory(is_superuser=True)


# Each builder makes a pending object and answers (url, data, read-back of its state).


def refund_single():
    row = RefundRequestFactory()
    return (
        reverse("admin:refunds_refundrequest_approve", args=[row.pk]),
        {"note": "ok"},
        lambda: RefundRequest.objects.get(pk=row.pk).status,
    )


def refund_bulk():
    row = RefundRequestFactory()
    return (
        reverse("admin:refunds_refundrequest_changelist"),
        {"action": "bulk_approve", ACTION_CHECKBOX_NAME: [row.pk], "apply": "1", "note": "x"},
        lambda: RefundRequest.objects.get(pk=row.pk).status,
    )


def _payout():
    instructor = InstructorFactory(stripe_account_id=f"acct_guard{next(_accounts)}")
    entry(instructor, 50000)
    return payout(instructor, 30000)


def payout_single():
    row = _payout()
    return (
        reverse("admin:payments_payout_approve", args=[row.pk]),
        {"note": "ok"},
        lambda: Payout.objects.get(pk=row.pk).status,
    )


def payout_reverse():
    row = _payout()
    return (
        reverse("admin:payments_payout_reverse", args=[row.pk]),
        {"amount": "10.00", "reason": "wrong instructor"},
        lambda: (Payout.objects.get(pk=row.pk).amount_reversed,),
    )


def _approved_bank_payout():
    instructor = InstructorFactory(stripe_account_id="", bank_account="DE89370400440532013000")
    entry(instructor, 50000)
    return payout(instructor, 30000, status=Payout.Status.APPROVED, method=Payout.Method.BANK)


def payout_mark_paid():
    row = _approved_bank_payout()
    return (
        reverse("admin:payments_payout_mark_paid", args=[row.pk]),
        {"bank_reference": "BANK-42"},
        lambda: Payout.objects.get(pk=row.pk).status,
    )


def payout_bulk():
    row = _payout()
    return (
        reverse("admin:payments_payout_changelist"),
        {"action": "bulk_approve", ACTION_CHECKBOX_NAME: [row.pk], "apply": "1", "note": "x"},
        lambda: Payout.objects.get(pk=row.pk).status,
    )


def _adjustment():
    return earning_adjustment_request(
        instructor=InstructorFactory(),
        amount=2500,
        currency="usd",
        reason="Bonus",
        acting_user=_requester(),
    )


def adjustment_bulk():
    row = _adjustment()
    return (
        reverse("admin:payments_earningadjustment_changelist"),
        {"action": "bulk_approve", ACTION_CHECKBOX_NAME: [row.pk], "apply": "1", "note": "x"},
        lambda: EarningAdjustment.objects.get(pk=row.pk).status,
    )


def _customer_adjustment():
    return customer_adjustment_request(
        customer=CustomerFactory(),
        direction="credit",
        unit="money",
        amount=2500,
        currency="usd",
        reason="Tutor no-show",
        acting_user=_requester(),
    )


def customer_adjustment_single():
    row = _customer_adjustment()
    return (
        reverse("admin:payments_customeradjustment_approve", args=[row.pk]),
        {"note": "ok"},
        lambda: CustomerAdjustment.objects.get(pk=row.pk).status,
    )


def customer_adjustment_bulk():
    row = _customer_adjustment()
    return (
        reverse("admin:payments_customeradjustment_changelist"),
        {"action": "bulk_approve", ACTION_CHECKBOX_NAME: [row.pk], "apply": "1", "note": "x"},
        lambda: CustomerAdjustment.objects.get(pk=row.pk).status,
    )


def dispute_submit(kind="submit"):
    row = DisputeFactory(status=Dispute.Status.NEEDS_RESPONSE)
    return (
        reverse(f"admin:payments_dispute_{kind}", args=[row.pk]),
        {"confirm": "1"},
        lambda: (Dispute.objects.get(pk=row.pk).status, row.responses.count()),
    )


def dispute_accept():
    return dispute_submit("accept")


def payment_retry():
    row = PaymentFactory(status=Payment.Status.FAILED)
    return (
        reverse("admin:payments_payment_retry", args=[row.pk]),
        {"confirm": "1", "reason": "card updated"},
        lambda: row.retries.count(),
    )


ADMIN_ACTIONS = [
    refund_single,
    refund_bulk,
    payout_single,
    payout_reverse,
    payout_mark_paid,
    payout_bulk,
    adjustment_bulk,
    customer_adjustment_single,
    customer_adjustment_bulk,
    dispute_submit,
    dispute_accept,
    payment_retry,
]


@pytest.mark.parametrize("build", ADMIN_ACTIONS, ids=lambda build: build.__name__)
def test_every_admin_money_post_asks_for_a_fresh_code_and_does_nothing(boss, build):
    url, data, state = build()
    before = state()
    client = session_client(boss, verified_minutes_ago=16)
    response = client.post(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{STEP_UP}?next=")
    assert state() == before
    assert not AdminAction.objects.filter(actor=boss).exists()
    page = client.get(response["Location"])
    assert ERR_STEP_UP.format(minutes=15) in [str(m) for m in page.context["messages"]]


def test_a_fresh_code_lets_the_approval_through(boss, fake_stripe):
    url, data, state = refund_single()
    response = session_client(boss, verified_minutes_ago=5).post(url, data)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:refunds_refundrequest_changelist")
    assert state() != RefundRequest.Status.PENDING


def test_the_confirmation_page_asks_for_the_code_before_the_form(boss):
    row = RefundRequestFactory()
    page = reverse("admin:refunds_refundrequest_approve_confirm", args=[row.pk])
    response = session_client(boss).get(page)
    assert response.status_code == 302
    assert response["Location"] == f"{STEP_UP}?next={page.replace('/', '%2F')}"
    assert session_client(boss, verified_minutes_ago=1).get(page).status_code == 200


def test_staff_without_a_device_are_not_asked_while_two_factor_is_optional(settings):
    settings.TWO_FACTOR_REQUIRED = False
    user = UserFactory(username="nodevice", is_superuser=True)
    row = RefundRequestFactory()
    page = reverse("admin:refunds_refundrequest_approve_confirm", args=[row.pk])
    assert session_client(user).get(page).status_code == 200


# --- the API ----------------------------------------------------------------------------------


def api_refund():
    row = RefundRequestFactory()
    return f"/api/v1/refund-requests/{row.pk}/approve/", {"note": "ok"}


def api_payout():
    return f"/api/v1/payouts/{_payout().pk}/approve/", {"note": "ok"}


def api_payout_reverse():
    return f"/api/v1/payouts/{_payout().pk}/reverse/", {"amount": 1000, "reason": "x"}


def api_payout_mark_paid():
    return (
        f"/api/v1/payouts/{_approved_bank_payout().pk}/mark-paid/",
        {"bank_reference": "BANK-42"},
    )


def api_adjustment():
    return f"/api/v1/earning-adjustments/{_adjustment().pk}/approve/", {"note": "ok"}


def api_dispute_submit():
    row = DisputeFactory(status=Dispute.Status.NEEDS_RESPONSE)
    return f"/api/v1/disputes/{row.pk}/submit/", {}


def api_dispute_accept():
    row = DisputeFactory(status=Dispute.Status.NEEDS_RESPONSE)
    return f"/api/v1/disputes/{row.pk}/accept/", {}


def api_retry():
    row = PaymentFactory(status=Payment.Status.FAILED)
    return "/api/v1/payment-retries/", {"payment": row.pk, "reason": "card updated"}


API_ACTIONS = [
    api_refund,
    api_payout,
    api_payout_reverse,
    api_payout_mark_paid,
    api_adjustment,
    api_dispute_submit,
    api_dispute_accept,
    api_retry,
]


@pytest.mark.parametrize("build", API_ACTIONS, ids=lambda build: build.__name__)
def test_an_api_session_with_a_stale_code_is_answered_step_up_required(boss, build):
    url, data = build()
    client = session_client(boss, verified_minutes_ago=16)
    response = client.post(url, data, content_type="application/json")
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "step_up_required"
    assert STEP_UP in response.json()["error"]["message"]
    assert not AdminAction.objects.filter(actor=boss).exists()


@pytest.mark.parametrize("build", API_ACTIONS, ids=lambda build: build.__name__)
def test_an_api_token_is_never_stepped_up(boss, build):
    url, data = build()
    issued = api_token_create(
        user=boss,
        name="bot",
        expires_at=timezone.now() + timedelta(days=1),
        acting_user=boss,
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    # Whatever the service answers (Stripe is not running here), it is not the step-up.
    response = client.post(url, data, content_type="application/json")
    if response.status_code >= 400 and response.headers["Content-Type"].startswith(
        "application/json"
    ):
        assert response.json()["error"]["code"] != "step_up_required"


# --- rate limits through the views -------------------------------------------------------------


@pytest.fixture
def one_a_minute(settings):
    settings.TWO_FACTOR_REQUIRED = False
    settings.MONEY_ACTIONS_PER_MINUTE = 1
    return settings


def test_the_admin_refuses_the_one_over_the_limit_says_when_and_audits(one_a_minute, fake_stripe):
    approver = UserFactory(username="fast", is_superuser=True)
    client = session_client(approver)
    first, second = RefundRequestFactory(), RefundRequestFactory()
    client.post(reverse("admin:refunds_refundrequest_approve", args=[first.pk]), {"note": "a"})
    url = reverse("admin:refunds_refundrequest_approve", args=[second.pk])
    response = client.post(url, {"note": "b"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any("try again in 60 seconds" in text for text in shown), shown
    assert RefundRequest.objects.get(pk=second.pk).status == RefundRequest.Status.PENDING
    refused = AdminAction.objects.get(result=AdminAction.Result.REFUSED)
    assert (refused.action, refused.target_id) == ("refund_request.approve", str(second.pk))
    assert (refused.amount, refused.currency) == (second.amount, second.currency)


def test_two_clients_of_one_user_share_the_bucket(one_a_minute, fake_stripe):
    """Two sessions (two browsers, or two servers behind a balancer) count together: the
    bucket is a database row, not process memory."""
    approver = UserFactory(username="twice", is_superuser=True)
    first, second = RefundRequestFactory(), RefundRequestFactory()
    session_client(approver).post(
        reverse("admin:refunds_refundrequest_approve", args=[first.pk]), {"note": "a"}
    )
    session_client(approver).post(
        reverse("admin:refunds_refundrequest_approve", args=[second.pk]), {"note": "b"}
    )
    assert RefundRequest.objects.get(pk=second.pk).status == RefundRequest.Status.PENDING


def test_a_refusal_by_the_service_gives_its_token_back(one_a_minute, fake_stripe):
    """Four-eyes refuses the requester's own request: nothing moved, so the minute's one
    approval is still there for the next request."""
    approver = UserFactory(username="own", is_superuser=True)
    own = RefundRequestFactory(requested_by=approver)
    other = RefundRequestFactory()
    client = session_client(approver)
    client.post(reverse("admin:refunds_refundrequest_approve", args=[own.pk]), {"note": "a"})
    assert RefundRequest.objects.get(pk=own.pk).status == RefundRequest.Status.PENDING
    client.post(reverse("admin:refunds_refundrequest_approve", args=[other.pk]), {"note": "b"})
    assert RefundRequest.objects.get(pk=other.pk).status != RefundRequest.Status.PENDING


def test_the_api_answers_429_with_retry_after_and_keeps_no_idempotent_answer(
    one_a_minute, fake_stripe, monkeypatch
):
    approver = UserFactory(username="api", is_superuser=True)
    issued = api_token_create(
        user=approver,
        name="bot",
        expires_at=timezone.now() + timedelta(days=1),
        acting_user=approver,
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    first, second = RefundRequestFactory(), RefundRequestFactory()
    ok = client.post(
        f"/api/v1/refund-requests/{first.pk}/approve/", {}, content_type="application/json"
    )
    assert ok.status_code == 200, ok.content
    url = f"/api/v1/refund-requests/{second.pk}/approve/"
    refused = client.post(url, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert AdminAction.objects.filter(result="refused", target_id=str(second.pk)).count() == 1
    # A minute later the same key runs the request: the 429 was not its answer.
    real_now = guard._now
    monkeypatch.setattr(guard, "_now", lambda: real_now() + 61)
    again = client.post(url, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 200, again.content
    assert again.get("Idempotent-Replayed") is None


# --- bulk maximum ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changelist", "action", "make"),
    [
        ("admin:refunds_refundrequest_changelist", "bulk_approve", RefundRequestFactory),
        ("admin:refunds_refundrequest_changelist", "bulk_reject", RefundRequestFactory),
        ("admin:payments_payout_changelist", "bulk_approve", _payout),
        ("admin:payments_payout_changelist", "bulk_cancel", _payout),
        ("admin:payments_earningadjustment_changelist", "bulk_approve", _adjustment),
        ("admin:payments_earningadjustment_changelist", "bulk_reject", _adjustment),
        (
            "admin:payments_customeradjustment_changelist",
            "bulk_approve",
            _customer_adjustment,
        ),
        ("admin:payments_customeradjustment_changelist", "bulk_reject", _customer_adjustment),
    ],
)
def test_a_bulk_action_over_the_maximum_is_refused_whole(settings, changelist, action, make):
    settings.TWO_FACTOR_REQUIRED = False
    settings.BULK_ACTION_MAX_ROWS = 2
    user = UserFactory(username="bulk", is_superuser=True)
    rows = [make() for _ in range(3)]
    model = type(rows[0])
    before = sorted(model.objects.values_list("pk", "status"))
    client = session_client(user)
    data = {"action": action, ACTION_CHECKBOX_NAME: [row.pk for row in rows]}
    for extra in ({}, {"apply": "1", "note": "x", "reason": "x"}):  # the page, then apply
        response = client.post(reverse(changelist), {**data, **extra}, follow=True)
        shown = [str(m) for m in response.context["messages"]]
        assert ERR_BULK_TOO_MANY.format(rows=3, limit=2) in shown
    assert sorted(model.objects.values_list("pk", "status")) == before
    refused = AdminAction.objects.filter(actor=user, result="refused")
    assert refused.count() == 2
    assert refused.first().target_id == "bulk"
