"""refunds.services: the rules (refundable amount, blocked payments, four-eyes, senior limit,
bad input) and processing (exactly once, resume after faults, one-transaction effects)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from post_office.models import STATUS, Email

from backoffice.models import AdminAction
from payments.exceptions import GatewayConnectionError, GatewayTimeout, InvalidRequest
from payments.models import BalanceEntry, Payment, Refund, StudentBalance
from payments.signals import refund_processed
from refunds import rules, services
from refunds.models import RefundRequest
from refunds.selectors import payment_refundability
from refunds.services import (
    RefundError,
    RefundPermissionError,
    refund_request_approve,
    refund_request_create,
    refund_request_process,
    refund_request_reject,
    refund_requests_process_pending,
)
from tests.factories import PaymentFactory, RefundFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db


def _approve(request_row, user, capture, note=""):
    """Approve and run the on-commit processing (the q2 task runs inline in tests)."""
    with capture(execute=True):
        return refund_request_approve(refund_request=request_row, acting_user=user, note=note)


# --- create: bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -100])
def test_create_refuses_amounts_that_are_not_positive(requester, amount):
    payment = PaymentFactory(amount=5000)
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=amount, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_NOT_POSITIVE
    assert not RefundRequest.objects.exists()
    assert not AdminAction.objects.exists()


def test_create_refuses_more_than_the_refundable_amount(requester):
    payment = PaymentFactory(amount=5000, amount_refunded=1000, status="partially_refunded")
    RefundFactory(payment=payment, amount=1000)
    RefundRequestFactory(payment=payment, amount=1500, status=RefundRequest.Status.APPROVED)
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=2501, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$25.01", refundable="$25.00"
    )
    # Exactly the refundable amount is fine.
    created = refund_request_create(payment=payment, amount=2500, acting_user=requester)
    assert created.status == RefundRequest.Status.PENDING


def test_create_refuses_another_currency(requester):
    payment = PaymentFactory(currency="eur")
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=100, currency="usd", acting_user=requester)
    assert str(exc.value) == rules.ERR_CURRENCY_MISMATCH.format(
        payment_currency="EUR", currency="USD"
    )


def test_create_refuses_amounts_that_are_not_minor_units(requester):
    payment = PaymentFactory()
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=10.5, acting_user=requester)
    assert str(exc.value) == rules.ERR_AMOUNT_NOT_MINOR_UNITS


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (Payment.Status.FAILED, rules.ERR_PAYMENT_FAILED),
        (Payment.Status.CANCELED, rules.ERR_PAYMENT_CANCELED),
        (Payment.Status.DISPUTED, rules.ERR_PAYMENT_DISPUTED),
        (Payment.Status.PENDING, rules.ERR_PAYMENT_NOT_CAPTURED),
    ],
)
def test_failed_canceled_disputed_payments_cannot_be_refunded(requester, status, message):
    payment = PaymentFactory(status=status)
    with pytest.raises(RefundError) as exc:
        refund_request_create(payment=payment, amount=100, acting_user=requester)
    assert str(exc.value) == message
    assert payment_refundability(payment=payment).blocked_reason == message


def test_create_needs_the_request_permission(viewer):
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_create(payment=PaymentFactory(), amount=100, acting_user=viewer)
    assert str(exc.value) == services.ERR_NO_REQUEST_PERMISSION


def test_create_writes_the_request_and_its_audit_row(requester):
    payment = PaymentFactory(amount=5000)
    created = refund_request_create(
        payment=payment, amount=1250, acting_user=requester, customer_note="Sick"
    )
    assert (created.amount, created.currency, created.requested_by) == (1250, "usd", requester)
    audit = AdminAction.objects.get()
    assert (audit.action, audit.actor, audit.amount, audit.target_id) == (
        services.AUDIT_CREATE,
        requester,
        1250,
        str(created.pk),
    )
    assert created.history.count() == 1


# --- approve / reject ------------------------------------------------------------------------


def test_requester_cannot_approve_their_own_request(approver, fake_stripe):
    row = RefundRequestFactory(requested_by=approver)
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=row, acting_user=approver)
    assert str(exc.value) == services.ERR_OWN_REQUEST
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING
    assert fake_stripe.create_calls == 0


def test_approve_needs_the_approve_permission(requester):
    row = RefundRequestFactory()
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_approve(refund_request=row, acting_user=requester)
    assert str(exc.value) == services.ERR_NO_APPROVE_PERMISSION


def test_large_requests_need_a_senior(
    approver, senior, fake_stripe, settings, django_capture_on_commit_callbacks
):
    settings.REFUND_SENIOR_APPROVAL_ABOVE = {"usd": "100.00"}
    payment = PaymentFactory(amount=50000)
    at_limit = RefundRequestFactory(payment=payment, amount=10000)
    above = RefundRequestFactory(payment=payment, amount=10001)
    _approve(at_limit, approver, django_capture_on_commit_callbacks)  # at the limit: fine
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_approve(refund_request=above, acting_user=approver)
    assert str(exc.value) == rules.ERR_NEEDS_SENIOR.format(limit="$100.00")
    above.refresh_from_db()
    assert above.status == RefundRequest.Status.PENDING
    _approve(above, senior, django_capture_on_commit_callbacks)
    above.refresh_from_db()
    assert above.status == RefundRequest.Status.PROCESSED


SENIOR = {"usd": "500.00", "eur": "500.00", "gbp": "400.00", "jpy": "75000"}


@pytest.mark.parametrize(
    ("currency", "at_limit", "limit_text"),
    [
        ("usd", 50000, "$500.00"),
        ("eur", 50000, "€500.00"),
        ("gbp", 40000, "£400.00"),
        ("jpy", 75000, "¥75,000"),
    ],
)
def test_senior_limit_is_per_currency(approver, senior, settings, currency, at_limit, limit_text):
    settings.REFUND_SENIOR_APPROVAL_ABOVE = SENIOR
    payment = PaymentFactory(amount=at_limit * 4, currency=currency)
    fine = RefundRequestFactory(payment=payment, amount=at_limit)
    above = RefundRequestFactory(payment=payment, amount=at_limit + 1)
    refund_request_approve(refund_request=fine, acting_user=approver)
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_approve(refund_request=above, acting_user=approver)
    assert str(exc.value) == rules.ERR_NEEDS_SENIOR.format(limit=limit_text)
    assert refund_request_approve(refund_request=above, acting_user=senior).status == "approved"


def test_501_yen_needs_no_senior(approver, settings):
    """The issue's case: one major-unit number for every currency made 501 yen (about 3 USD)
    a senior decision. In yen's own threshold it is an everyday refund."""
    settings.REFUND_SENIOR_APPROVAL_ABOVE = SENIOR
    row = RefundRequestFactory(payment=PaymentFactory(amount=50000, currency="jpy"), amount=501)
    approved = refund_request_approve(refund_request=row, acting_user=approver)
    assert approved.status == RefundRequest.Status.APPROVED


def test_a_currency_without_a_senior_limit_always_needs_a_senior(approver, senior, settings):
    settings.REFUND_SENIOR_APPROVAL_ABOVE = SENIOR
    row = RefundRequestFactory(payment=PaymentFactory(amount=50000, currency="chf"), amount=1)
    with pytest.raises(RefundPermissionError) as exc:
        refund_request_approve(refund_request=row, acting_user=approver)
    assert str(exc.value) == rules.ERR_NEEDS_SENIOR_ANY.format(currency="CHF")
    assert refund_request_approve(refund_request=row, acting_user=senior).status == "approved"


def test_approving_something_not_pending_changes_nothing(approver):
    row = RefundRequestFactory(status=RefundRequest.Status.REJECTED)
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=row, acting_user=approver)
    assert str(exc.value) == services.ERR_NOT_PENDING.format(status="rejected")
    assert not AdminAction.objects.exists()


def test_approval_rechecks_the_refundable_amount(approver, fake_stripe):
    payment = PaymentFactory(amount=5000)
    RefundRequestFactory(payment=payment, amount=4000, status=RefundRequest.Status.APPROVED)
    row = RefundRequestFactory(payment=payment, amount=1001)  # pending: was fine when made
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=row, acting_user=approver)
    assert str(exc.value) == rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(
        amount="$10.01", refundable="$10.00"
    )


def test_approval_of_a_payment_disputed_since_the_request_is_refused(approver):
    row = RefundRequestFactory()
    Payment.objects.filter(pk=row.payment_id).update(status=Payment.Status.DISPUTED)
    with pytest.raises(RefundError) as exc:
        refund_request_approve(refund_request=row, acting_user=approver)
    assert str(exc.value) == rules.ERR_PAYMENT_DISPUTED


@pytest.mark.parametrize("reason", ["", "   "])
def test_rejecting_without_a_reason_changes_nothing(approver, reason):
    row = RefundRequestFactory()
    with pytest.raises(RefundError) as exc:
        refund_request_reject(refund_request=row, acting_user=approver, reason=reason)
    assert str(exc.value) == services.ERR_REJECTION_REASON_REQUIRED
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING


def test_reject_records_reason_and_audit(approver):
    row = RefundRequestFactory()
    refund_request_reject(refund_request=row, acting_user=approver, reason="Used the course")
    row.refresh_from_db()
    assert (row.status, row.rejection_reason, row.rejected_by) == (
        RefundRequest.Status.REJECTED,
        "Used the course",
        approver,
    )
    audit = AdminAction.objects.get()
    assert (audit.action, audit.reason) == (services.AUDIT_REJECT, "Used the course")


# --- processing --------------------------------------------------------------------------------


def test_approval_processes_the_refund_with_all_its_effects(
    approver, fake_stripe, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=5000)
    row = RefundRequestFactory(payment=payment, amount=2000)
    received = []
    refund_processed.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t1")
    try:
        _approve(row, approver, django_capture_on_commit_callbacks, note="Fine")
    finally:
        refund_processed.disconnect(dispatch_uid="t1")
    row.refresh_from_db()
    payment.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.idempotency_key == f"refund:{row.pk}"
    assert row.stripe_refund_id == fake_stripe.refunds[0].id
    assert fake_stripe.create_calls == 1
    assert fake_stripe.refunds[0].amount == 2000
    assert fake_stripe.refunds[0].metadata["refund_request_id"] == str(row.pk)
    assert (payment.amount_refunded, payment.status) == (2000, Payment.Status.PARTIALLY_REFUNDED)
    mirror = Refund.objects.get(payment=payment)
    assert (mirror.stripe_id, mirror.amount) == (row.stripe_refund_id, 2000)
    actions = list(
        AdminAction.objects.filter(target_type="refunds.refundrequest")
        .order_by("id")
        .values_list("action", "result", "actor")
    )
    assert actions == [
        (services.AUDIT_APPROVE, "success", approver.pk),
        (services.AUDIT_PROCESS, "success", approver.pk),
    ]
    # Queued in the refund's transaction (the outbox), sent by the outbox job.
    assert mail.outbox == []
    (queued,) = Email.objects.filter(status=STATUS.queued)
    assert queued.to == [payment.customer.email]
    assert queued.subject == services.EMAIL_SUBJECT.format(amount="$20.00")
    assert queued.customer_email.target_id == str(row.pk)
    assert len(received) == 1
    assert received[0]["refund_amount"] == 2000
    assert received[0]["refund_request"].pk == row.pk


def test_full_refund_marks_the_payment_refunded(
    approver, fake_stripe, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=5000)
    _approve(
        RefundRequestFactory(payment=payment, amount=5000),
        approver,
        django_capture_on_commit_callbacks,
    )
    payment.refresh_from_db()
    assert (payment.amount_refunded, payment.status) == (5000, Payment.Status.REFUNDED)


def test_no_email_when_the_customer_is_not_to_be_notified(
    approver, fake_stripe, django_capture_on_commit_callbacks
):
    _approve(
        RefundRequestFactory(notify_customer=False), approver, django_capture_on_commit_callbacks
    )
    assert not Email.objects.exists()


def test_idempotency_key_is_committed_before_the_stripe_call(approver, fake_stripe, monkeypatch):
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    seen = {}
    original = fake_stripe.stripe_refund_create

    def spy(**kwargs):
        stored = RefundRequest.objects.get(pk=row.pk)
        seen.update(
            status=stored.status, key=stored.idempotency_key, sent=kwargs["idempotency_key"]
        )
        return original(**kwargs)

    from payments import gateway

    monkeypatch.setattr(gateway, "stripe_refund_create", spy)
    refund_request_process(refund_request=row)
    assert seen == {"status": "processing", "key": f"refund:{row.pk}", "sent": f"refund:{row.pk}"}


def test_processing_twice_refunds_once(approver, fake_stripe):
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    first = refund_request_process(refund_request=row)
    second = refund_request_process(refund_request=row)
    assert first.status == second.status == RefundRequest.Status.PROCESSED
    assert fake_stripe.create_calls == 1
    assert AdminAction.objects.filter(action=services.AUDIT_PROCESS).count() == 1


def test_a_live_claim_by_another_worker_is_left_alone(approver, fake_stripe):
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    RefundRequest.objects.filter(pk=row.pk).update(
        status=RefundRequest.Status.PROCESSING, processing_started_at=timezone.now()
    )
    result = refund_request_process(refund_request=row)
    assert result.status == RefundRequest.Status.PROCESSING
    assert fake_stripe.create_calls == 0
    assert refund_requests_process_pending()["candidates"] == 0


def test_fault_before_stripe_acted_then_resume_refunds_once(approver, fake_stripe):
    """Connection refused: nothing reached Stripe. The request stays PROCESSING (outcome
    unknown to us), and the next run looks first, finds nothing, and refunds once."""
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    fake_stripe.fail_before = GatewayConnectionError()
    result = refund_request_process(refund_request=row)
    assert result.status == RefundRequest.Status.PROCESSING
    assert result.processing_started_at is None  # claim released: resumable at once
    assert fake_stripe.refunds == []
    fake_stripe.fail_before = None
    assert refund_requests_process_pending() == {
        "candidates": 1,
        "processed": 1,
        "failed": 0,
        "canceled": 0,
        "still_processing": 0,
    }
    assert fake_stripe.list_calls == 1  # looked before calling again
    assert len(fake_stripe.refunds) == 1
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.processing_attempts == 2


def test_fault_after_stripe_accepted_never_refunds_twice(approver, fake_stripe):
    """Stripe made the refund but the answer was lost (timeout). The resume finds the
    refund by its metadata and records it; no second refund."""
    payment = PaymentFactory(amount=5000)
    row = RefundRequestFactory(payment=payment, amount=3000)
    refund_request_approve(refund_request=row, acting_user=approver)
    fake_stripe.fail_after = GatewayTimeout()
    assert refund_request_process(refund_request=row).status == RefundRequest.Status.PROCESSING
    assert len(fake_stripe.refunds) == 1
    payment.refresh_from_db()
    assert payment.amount_refunded == 0  # not recorded yet
    # While it is unresolved, its amount stays reserved: no other request can take it.
    assert payment_refundability(payment=payment).refundable == 2000
    fake_stripe.fail_after = None
    refund_requests_process_pending()
    refund_requests_process_pending()
    assert fake_stripe.create_calls == 1
    assert len(fake_stripe.refunds) == 1
    row.refresh_from_db()
    payment.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.stripe_refund_id == fake_stripe.refunds[0].id
    assert payment.amount_refunded == 3000


def test_a_crashed_worker_is_resumed_after_its_lease(approver, fake_stripe, settings):
    """The process died after Stripe accepted (no exception, no record). After the lease the
    command resumes with a lookup and records the existing refund."""
    settings.REFUND_PROCESSING_LEASE_SECONDS = 60
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    claimed = services._claim(row.pk, acting_user=None)
    fake_stripe.stripe_refund_create(
        payment_intent_id=row.payment.stripe_payment_intent_id,
        amount=row.amount,
        idempotency_key=claimed.idempotency_key,
        metadata={"refund_request_id": row.pk, "idempotency_key": claimed.idempotency_key},
    )
    assert refund_requests_process_pending()["candidates"] == 0  # lease still live
    RefundRequest.objects.filter(pk=row.pk).update(
        processing_started_at=timezone.now() - timedelta(seconds=61)
    )
    assert refund_requests_process_pending()["processed"] == 1
    assert fake_stripe.create_calls == 1
    row.refresh_from_db()
    assert row.stripe_refund_id == fake_stripe.refunds[0].id


def test_stripe_refusal_fails_the_request_and_frees_the_amount(approver, fake_stripe):
    payment = PaymentFactory(amount=5000)
    row = RefundRequestFactory(payment=payment, amount=5000)
    refund_request_approve(refund_request=row, acting_user=approver)
    assert payment_refundability(payment=payment).refundable == 0
    fake_stripe.fail_before = InvalidRequest("Charge ch_x has already been refunded.")
    result = refund_request_process(refund_request=row)
    assert result.status == RefundRequest.Status.FAILED
    assert result.failure_message == "Charge ch_x has already been refunded."
    assert payment_refundability(payment=payment).refundable == 5000
    audit = AdminAction.objects.get(action=services.AUDIT_PROCESS)
    assert audit.result == AdminAction.Result.FAILURE


@pytest.mark.parametrize(
    ("package_minutes", "amount", "refunds", "expected_minutes"),
    [
        (600, 5000, [5000], [-600]),
        (600, 5000, [2500], [-300]),
        # Thirds of 600 min at 3001 cents: cumulative rounding, the total is exact.
        (600, 3001, [1000, 1000, 1001], [-200, -200, -200]),
        (90, 3000, [1000, 2000], [-30, -60]),
    ],
)
def test_hour_packages_take_the_refunded_share_off_the_balance(
    approver, fake_stripe, package_minutes, amount, refunds, expected_minutes
):
    """The refund's minutes are taken on the hours ledger (payments.hours), through the same
    upsert the sync and webhooks use: the package is credited once, then each refund takes
    its cumulative pro-rata share."""
    payment = PaymentFactory(
        amount=amount,
        product_kind=Payment.ProductKind.HOUR_PACKAGE,
        package_minutes=package_minutes,
    )
    for refund_amount in refunds:
        row = RefundRequestFactory(payment=payment, amount=refund_amount)
        refund_request_approve(refund_request=row, acting_user=approver)
        refund_request_process(refund_request=row)
    entries = list(
        BalanceEntry.objects.filter(payment=payment, kind=BalanceEntry.Kind.REFUND)
        .order_by("id")
        .values_list("minutes", flat=True)
    )
    assert entries == expected_minutes
    balance = StudentBalance.objects.get(customer=payment.customer)
    assert balance.minutes == package_minutes + sum(expected_minutes)
    purchases = BalanceEntry.objects.filter(payment=payment, kind=BalanceEntry.Kind.PURCHASE)
    assert purchases.count() == 1
    assert all(
        ref.startswith("hours:") for ref in BalanceEntry.objects.values_list("reference", flat=True)
    )


def test_courses_leave_the_balance_alone(approver, fake_stripe):
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    refund_request_process(refund_request=row)
    assert not BalanceEntry.objects.exists()
