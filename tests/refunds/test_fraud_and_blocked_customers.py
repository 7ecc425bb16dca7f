"""Refunds and fraud: a blocked customer's refunds need a senior approver; a confirmed early
fraud warning may propose a full refund to the queue (per setting), once per alert."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.models import FraudAlert
from payments.services.customer_block import customer_block
from payments.services.fraud_alert import fraud_alert_resolve
from refunds import rules
from refunds.models import RefundRequest
from refunds.receivers import propose_refund_on_confirmed_warning
from refunds.services import (
    AUDIT_FRAUD_PROPOSAL_SKIPPED,
    SKIP_FULLY_REFUNDED,
    SKIP_OPEN_DISPUTE,
    RefundPermissionError,
    refund_request_approve,
    refund_request_propose_for_fraud,
)
from tests.factories import (
    DisputeFactory,
    PaymentFactory,
    RefundRequestFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraud_reviewer(db):
    user = UserFactory(username="fraud")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["review_fraudalert", "block_customer"])
    )
    return type(user).objects.get(pk=user.pk)


# --- blocked customers need a senior -------------------------------------------------------------


def test_a_small_refund_to_a_blocked_customer_needs_a_senior(approver, senior, fraud_reviewer):
    payment = PaymentFactory(amount=5000, currency="usd")
    customer_block(customer=payment.customer, reason="fraud", acting_user=fraud_reviewer)
    request = RefundRequestFactory(payment=payment, amount=1000, requested_by=None)
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_approve(refund_request=request, acting_user=approver)
    assert str(exc.value) == rules.ERR_NEEDS_SENIOR_BLOCKED
    request.refresh_from_db()
    assert request.status == RefundRequest.Status.PENDING
    approved = refund_request_approve(refund_request=request, acting_user=senior)
    assert approved.status == RefundRequest.Status.APPROVED


def test_the_same_refund_needs_no_senior_once_unblocked(approver):
    payment = PaymentFactory(amount=5000, currency="usd")
    request = RefundRequestFactory(payment=payment, amount=1000, requested_by=None)
    approved = refund_request_approve(refund_request=request, acting_user=approver)
    assert approved.status == RefundRequest.Status.APPROVED


def test_the_amount_rule_is_named_when_the_amount_alone_needs_a_senior():
    assert rules.needs_senior_approval(amount=1, currency="usd", customer_blocked=True)
    assert not rules.needs_senior_approval(amount=1, currency="usd")
    assert rules.senior_message("usd", amount=1, customer_blocked=True) == (
        rules.ERR_NEEDS_SENIOR_BLOCKED
    )
    assert rules.senior_message("usd", amount=10**9, customer_blocked=True) == (
        rules.ERR_NEEDS_SENIOR.format(limit="$500.00")
    )


def test_the_approval_page_says_a_senior_is_needed_and_why(client, approver, fraud_reviewer):
    payment = PaymentFactory(amount=5000, currency="usd")
    customer_block(customer=payment.customer, reason="fraud", acting_user=fraud_reviewer)
    request = RefundRequestFactory(payment=payment, amount=1000, requested_by=None)
    client.force_login(approver)
    body = client.get(
        reverse("admin:refunds_refundrequest_approve_confirm", args=[request.pk])
    ).content.decode()
    assert rules.ERR_NEEDS_SENIOR_BLOCKED in body
    assert 'data-testid="customer-blocked"' in body


# --- the proposal on a confirmed early fraud warning ------------------------------------------


def warning_alert(payment, source=FraudAlert.Source.EARLY_FRAUD_WARNING):
    return FraudAlert.objects.create(
        payment=payment,
        source=source,
        stripe_id="issfr_proposal" if source == FraudAlert.Source.EARLY_FRAUD_WARNING else "",
        created=timezone.now(),
    )


def confirm(alert, user, capture):
    with capture(execute=True):
        return fraud_alert_resolve(
            alert=alert, outcome="confirmed", note="stolen card", acting_user=user
        )


@pytest.fixture
def propose(settings):
    settings.FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING = True


def test_no_proposal_when_the_setting_is_off(fraud_reviewer, django_capture_on_commit_callbacks):
    alert = warning_alert(PaymentFactory(amount=5000))
    confirm(alert, fraud_reviewer, django_capture_on_commit_callbacks)
    assert not RefundRequest.objects.exists()


def test_a_confirmed_warning_proposes_one_full_pending_refund(
    propose, fraud_reviewer, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=5000, currency="eur")
    alert = warning_alert(payment)
    confirm(alert, fraud_reviewer, django_capture_on_commit_callbacks)
    proposal = RefundRequest.objects.get()
    assert proposal.source == RefundRequest.Source.FRAUD
    assert proposal.status == RefundRequest.Status.PENDING
    assert (proposal.amount, proposal.currency) == (5000, "eur")
    assert proposal.reason == RefundRequest.Reason.FRAUDULENT
    assert proposal.fraud_alert == alert and proposal.requested_by is None
    assert f"fraud alert #{alert.pk}" in proposal.admin_notes
    # A replayed confirmation, and the signal delivered again: still one request.
    confirm(alert, fraud_reviewer, django_capture_on_commit_callbacks)
    propose_refund_on_confirmed_warning(sender=FraudAlert, alert=alert)
    assert refund_request_propose_for_fraud(alert=alert) is None
    assert RefundRequest.objects.count() == 1
    assert AdminAction.objects.filter(action="refund_request.create").count() == 1


def test_the_proposal_is_what_is_left_to_refund(
    propose, fraud_reviewer, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=5000, amount_refunded=1500, status="partially_refunded")
    alert = warning_alert(payment)
    confirm(alert, fraud_reviewer, django_capture_on_commit_callbacks)
    assert RefundRequest.objects.get().amount == 3500


def test_staff_flags_and_dismissed_warnings_propose_nothing(
    propose, fraud_reviewer, django_capture_on_commit_callbacks
):
    staff_alert = warning_alert(PaymentFactory(), source=FraudAlert.Source.STAFF)
    confirm(staff_alert, fraud_reviewer, django_capture_on_commit_callbacks)
    dismissed = warning_alert(PaymentFactory())
    with django_capture_on_commit_callbacks(execute=True):
        fraud_alert_resolve(
            alert=dismissed, outcome="dismissed", note="fine", acting_user=fraud_reviewer
        )
    assert refund_request_propose_for_fraud(alert=dismissed) is None
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(
    ("make_payment", "skip_reason"),
    [
        (
            lambda: PaymentFactory(amount=5000, amount_refunded=5000, status="refunded"),
            SKIP_FULLY_REFUNDED,
        ),
        (lambda: DisputeFactory(status="needs_response").payment, SKIP_OPEN_DISPUTE),
        (lambda: PaymentFactory(status="disputed"), SKIP_OPEN_DISPUTE),
    ],
)
def test_skipped_with_an_audit_note(
    propose, fraud_reviewer, django_capture_on_commit_callbacks, make_payment, skip_reason
):
    alert = warning_alert(make_payment())
    confirm(alert, fraud_reviewer, django_capture_on_commit_callbacks)
    assert not RefundRequest.objects.exists()
    note = AdminAction.objects.get(action=AUDIT_FRAUD_PROPOSAL_SKIPPED)
    assert note.reason == skip_reason and note.target_id == str(alert.pk)
    assert note.actor is None


def test_a_proposal_to_a_blocked_customer_needs_a_senior(
    propose, approver, senior, fraud_reviewer, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=1000, currency="usd")
    customer_block(customer=payment.customer, reason="fraud", acting_user=fraud_reviewer)
    confirm(warning_alert(payment), fraud_reviewer, django_capture_on_commit_callbacks)
    proposal = RefundRequest.objects.get()
    with pytest.raises(RefundPermissionError):
        refund_request_approve(refund_request=proposal, acting_user=approver)
    assert refund_request_approve(refund_request=proposal, acting_user=senior).status == (
        RefundRequest.Status.APPROVED
    )
