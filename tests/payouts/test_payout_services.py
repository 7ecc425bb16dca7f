"""Manual payouts, approval rules (four-eyes, senior limit), processing through Stripe Connect
exactly once, failures, cancellation, bank transfers marked paid, reversals and the bank file.
Stripe is the recording fake of payout_support (the localstripe tests use the real peer)."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.models import AdminAction
from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry, Payout, Transfer, TransferReversal
from payments.payout_rules import (
    ERR_NO_APPROVE_PERMISSION,
    ERR_NO_BANK_ACCOUNT,
    ERR_NO_CREATE_PERMISSION,
    ERR_NO_MARK_PAID_PERMISSION,
    ERR_NO_REVERSE_PERMISSION,
    ERR_NOT_APPROVED_FOR_PAYMENT,
    ERR_NOT_BANK_TRANSFER,
    ERR_NOT_CANCELABLE,
    ERR_NOT_PENDING,
    ERR_OWN_PAYOUT,
    ERR_SENIOR_NEEDED,
    ERR_SENIOR_NEEDED_ANY,
    approve_refusal,
)
from payments.services.payouts import (
    BANK_FILE_HEADER,
    ERR_ABOVE_AVAILABLE,
    ERR_BANK_REFERENCE_REQUIRED,
    ERR_CANCEL_REASON_REQUIRED,
    ERR_NOTE_REQUIRED,
    ERR_REVERSAL_ABOVE_LEFT,
    PayoutError,
    PayoutPermissionError,
    payout_approve,
    payout_bank_file_rows,
    payout_cancel,
    payout_manual_create,
    payout_mark_paid,
    payout_process,
    payout_reverse,
    payout_run_create,
    payouts_process_approved,
)
from tests.factories import InstructorFactory
from tests.payouts.conftest import earn, staff

pytestmark = pytest.mark.django_db


def _balance(instructor, currency="usd"):
    return earning_balances(instructor_ids=[instructor.pk])[(instructor.pk, currency)]


@pytest.fixture
def ada(db):
    instructor = InstructorFactory(name="Ada", stripe_account_id="acct_ada")
    earn(instructor, 20_000)
    return instructor


@pytest.fixture
def bea(db):
    instructor = InstructorFactory(
        name="Bea", email="bea@example.com", bank_account="DE89370400440532013000"
    )
    earn(instructor, 12_345)
    return instructor


@pytest.fixture
def approve(django_capture_on_commit_callbacks):
    """payout_approve, then what it queued on commit (the processing task, which django-q2
    runs inline in tests)."""

    def run(payout, acting_user, note=""):
        with django_capture_on_commit_callbacks(execute=True):
            return payout_approve(payout=payout, acting_user=acting_user, note=note)

    return run


def _run_payout(instructor) -> Payout:
    payout_run_create()
    return Payout.objects.get(instructor=instructor)


# --- manual payouts and approval ---------------------------------------------------------------


def test_a_manual_payout_cannot_exceed_the_available_balance(ada, clerk):
    earn(ada, 5000, days_ago=1)  # on hold: not payable
    with pytest.raises(PayoutError) as exc:
        payout_manual_create(
            instructor=ada, amount=20_001, currency="usd", note="Early", acting_user=clerk
        )
    assert str(exc.value) == ERR_ABOVE_AVAILABLE.format(available="$200.00", currency="USD")
    payout = payout_manual_create(
        instructor=ada, amount=20_000, currency="usd", note="Early", acting_user=clerk
    )
    assert (payout.source, payout.status, payout.requested_by) == ("manual", "pending", clerk)
    assert _balance(ada).available == 0
    with pytest.raises(PayoutError):  # the first one took it all
        payout_manual_create(instructor=ada, amount=1, currency="usd", note="x", acting_user=clerk)
    assert AdminAction.objects.filter(action="payout.create", target_id=str(payout.pk)).exists()


def test_a_manual_payout_needs_a_note_and_the_permission(ada, clerk):
    with pytest.raises(PayoutError) as exc:
        payout_manual_create(
            instructor=ada, amount=100, currency="usd", note=" ", acting_user=clerk
        )
    assert str(exc.value) == ERR_NOTE_REQUIRED
    viewer = staff("viewer", "view_payout")
    with pytest.raises(PayoutPermissionError) as exc:
        payout_manual_create(
            instructor=ada, amount=100, currency="usd", note="x", acting_user=viewer
        )
    assert str(exc.value) == ERR_NO_CREATE_PERMISSION
    assert not Payout.objects.exists()


def test_four_eyes_the_requester_cannot_approve_a_manual_payout(
    ada, clerk, approver, connect, approve
):
    payout = payout_manual_create(
        instructor=ada, amount=1000, currency="usd", note="Advance", acting_user=clerk
    )
    assert str(approve_refusal(user=clerk, payout=payout)) == ERR_OWN_PAYOUT
    with pytest.raises(PayoutError) as exc:
        approve(payout, clerk)
    assert str(exc.value) == ERR_OWN_PAYOUT
    assert approve(payout, approver).approved_by == approver


def test_run_payouts_have_no_requester_and_any_approver_may_approve_them(
    ada, clerk, connect, approve
):
    payout = _run_payout(ada)
    approve(payout, clerk, note="Weekly batch")
    payout.refresh_from_db()
    assert (payout.approved_by, payout.approval_note) == (clerk, "Weekly batch")


def test_approval_needs_the_permission_and_a_pending_payout(ada, clerk, connect, approve):
    payout = _run_payout(ada)
    viewer = staff("viewer", "view_payout")
    with pytest.raises(PayoutPermissionError) as exc:
        approve(payout, viewer)
    assert str(exc.value) == ERR_NO_APPROVE_PERMISSION
    approve(payout, clerk)
    with pytest.raises(PayoutError) as exc:
        approve(payout, clerk)
    assert str(exc.value) == ERR_NOT_PENDING.format(status="paid")


def test_above_the_senior_limit_of_its_currency_a_payout_needs_a_senior(
    settings, clerk, senior, connect, approve
):
    settings.PAYOUT_SENIOR_APPROVAL_ABOVE = {"usd": "100.00", "jpy": "15000"}
    settings.PAYOUT_MINIMUM = {"usd": "10", "jpy": "1500", "eur": "10"}
    big_usd, small_jpy, euro = InstructorFactory.create_batch(3)
    earn(big_usd, 10_001)
    earn(small_jpy, 15_000, "jpy")  # 15,000 yen: at the limit, not above it
    earn(euro, 1000, "eur")  # no limit configured for eur: a senior, always
    payout_run_create()
    by_instructor = {p.instructor_id: p for p in Payout.objects.all()}
    with pytest.raises(PayoutPermissionError) as exc:
        approve(by_instructor[big_usd.pk], clerk)
    assert str(exc.value) == ERR_SENIOR_NEEDED.format(limit="$100.00", amount="$100.01")
    with pytest.raises(PayoutPermissionError) as exc:
        approve(by_instructor[euro.pk], clerk)
    assert str(exc.value) == ERR_SENIOR_NEEDED_ANY.format(currency="EUR")
    approve(by_instructor[small_jpy.pk], clerk)
    approve(by_instructor[big_usd.pk], senior)
    approve(by_instructor[euro.pk], senior)
    assert not Payout.objects.filter(status=Payout.Status.PENDING).exists()


# --- processing through Stripe Connect ---------------------------------------------------------


def test_approval_sends_the_transfer_with_the_payout_key(ada, clerk, connect, approve):
    payout = _run_payout(ada)
    # django-q2 runs the queued task inline in tests (Q_CLUSTER sync).
    approve(payout, clerk)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    [call] = connect.create_calls
    assert call == {
        "idempotency_key": f"payout:{payout.pk}",
        "amount": 20_000,
        "currency": "usd",
        "destination": "acct_ada",
        "transfer_group": f"payout:{payout.pk}",
        "metadata": {"payout_id": str(payout.pk), "instructor_id": str(ada.pk)},
        "description": f"Payout #{payout.pk}",
    }
    assert payout.stripe_transfer_id == "tr_fake1"
    assert payout.idempotency_key == f"payout:{payout.pk}"
    # Mirrored through sync.upsert_transfers, linked to the payout and the instructor.
    transfer = Transfer.objects.get()
    assert (transfer.stripe_id, transfer.payout, transfer.instructor) == ("tr_fake1", payout, ada)
    assert _balance(ada).balance == 0
    assert AdminAction.objects.filter(action="payout.process", result="success").count() == 1


def test_processing_again_sends_nothing_more(ada, clerk, connect, approve):
    payout = _run_payout(ada)
    approve(payout, clerk)
    for _ in range(3):
        assert payout_process(payout_id=payout.pk).status == Payout.Status.PAID
    assert payouts_process_approved()["candidates"] == 0
    assert len(connect.create_calls) == 1


def test_a_live_claim_is_not_taken_over_but_an_expired_one_is(ada, clerk, connect, settings):
    payout = _run_payout(ada)
    Payout.objects.filter(pk=payout.pk).update(
        status=Payout.Status.PROCESSING,
        processing_started_at=timezone.now(),
        attempts=1,
        idempotency_key=f"payout:{payout.pk}",
    )
    assert payout_process(payout_id=payout.pk).status == Payout.Status.PROCESSING
    assert connect.create_calls == []
    Payout.objects.filter(pk=payout.pk).update(
        processing_started_at=timezone.now()
        - timedelta(seconds=settings.PAYOUT_PROCESSING_LEASE_SECONDS + 1)
    )
    assert payouts_process_approved()["paid"] == 1
    assert len(connect.create_calls) == 1


def test_timeout_then_resume_makes_one_transfer(ada, clerk, connect, approve):
    payout = _run_payout(ada)
    connect.fail_next = "timeout_after_create"  # Stripe made it; we heard nothing
    approve(payout, clerk)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PROCESSING
    assert payout.processing_started_at is None  # claim released: resumable at once
    assert len(connect.transfers) == 1
    result = payouts_process_approved()
    assert (result["paid"], result["unknown_outcome"]) == (1, 0)
    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer_id, payout.attempts) == ("paid", "tr_fake1", 2)
    # Found by its transfer_group: no second create call at all.
    assert len(connect.create_calls) == 1
    assert len(connect.transfers) == 1


def test_a_resumed_payout_with_no_transfer_in_stripe_sends_the_same_key(ada, clerk, connect):
    payout = _run_payout(ada)
    Payout.objects.filter(pk=payout.pk).update(
        status=Payout.Status.PROCESSING,
        attempts=1,
        idempotency_key=f"payout:{payout.pk}",
        processing_started_at=None,
    )
    payouts_process_approved()
    [call] = connect.create_calls
    assert call["idempotency_key"] == f"payout:{payout.pk}"
    assert Payout.objects.get(pk=payout.pk).status == Payout.Status.PAID


def test_a_failed_transfer_restores_the_balance(ada, clerk, connect, approve):
    connect.unknown_accounts.add("acct_ada")
    payout = _run_payout(ada)
    assert _balance(ada).available == 0
    approve(payout, clerk)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED
    assert payout.failure_code == "resource_missing"
    assert payout.failure_message.startswith("No such destination")
    returned = EarningEntry.objects.get(kind=EarningEntry.Kind.PAYOUT_RETURNED)
    assert (returned.reference, returned.amount) == (f"payout:{payout.pk}:returned", 20_000)
    assert _balance(ada).available == 20_000
    # Processing it again changes nothing and writes nothing twice.
    payout_process(payout_id=payout.pk)
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_RETURNED).count() == 1
    assert AdminAction.objects.filter(action="payout.process", result="failure").count() == 1
    # The next run pays the instructor again (a new payout, a new key).
    connect.unknown_accounts.clear()
    assert payout_run_create().payouts_created == 1


def test_an_unknown_outcome_fails_the_processing_job_until_it_is_resolved(ada, clerk, connect):
    from management.jobs import payouts_unknown_outcome_error, process_payouts

    payout = _run_payout(ada)
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.APPROVED)

    def always_timeout(**kwargs):
        from payments.exceptions import GatewayTimeout

        raise GatewayTimeout()

    from payments import gateway

    original = gateway.stripe_transfer_create
    gateway.stripe_transfer_create = always_timeout
    try:
        result = process_payouts()
    finally:
        gateway.stripe_transfer_create = original
    assert result["unknown_outcome"] == 1
    assert payouts_unknown_outcome_error(result)
    result = process_payouts()
    assert (result["paid"], payouts_unknown_outcome_error(result)) == (1, "")


# --- cancel, bank transfers --------------------------------------------------------------------


def test_cancel_returns_the_money_once(ada, clerk, connect):
    payout = _run_payout(ada)
    with pytest.raises(PayoutError) as exc:
        payout_cancel(payout=payout, reason="", acting_user=clerk)
    assert str(exc.value) == ERR_CANCEL_REASON_REQUIRED
    payout_cancel(payout=payout, reason="Instructor asked to wait", acting_user=clerk)
    payout.refresh_from_db()
    assert (payout.status, payout.canceled_by, payout.cancel_reason) == (
        "canceled",
        clerk,
        "Instructor asked to wait",
    )
    assert _balance(ada).available == 20_000
    with pytest.raises(PayoutError) as exc:
        payout_cancel(payout=payout, reason="again", acting_user=clerk)
    assert str(exc.value) == ERR_NOT_CANCELABLE.format(status="canceled")
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_RETURNED).count() == 1


def test_an_approved_connect_payout_canceled_before_processing_is_never_sent(ada, clerk, connect):
    payout = _run_payout(ada)
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.APPROVED)
    payout_cancel(payout=payout, reason="Hold", acting_user=clerk)
    assert payout_process(payout_id=payout.pk).status == Payout.Status.CANCELED
    assert connect.create_calls == []


def test_a_paid_payout_cannot_be_canceled(ada, clerk, connect, approve):
    payout = _run_payout(ada)
    approve(payout, clerk)
    with pytest.raises(PayoutError) as exc:
        payout_cancel(payout=payout, reason="Too late", acting_user=clerk)
    assert str(exc.value) == ERR_NOT_CANCELABLE.format(status="paid")


def test_a_bank_transfer_waits_for_mark_paid_with_the_bank_reference(
    bea, clerk, senior, connect, approve
):
    payout = _run_payout(bea)
    assert payout.method == Payout.Method.BANK
    with pytest.raises(PayoutError) as exc:
        payout_mark_paid(payout=payout, bank_reference="BANK-1", acting_user=senior)
    assert str(exc.value) == ERR_NOT_APPROVED_FOR_PAYMENT.format(status="pending approval")
    approve(payout, clerk)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.APPROVED  # no Stripe call for a bank transfer
    assert connect.create_calls == []
    assert payouts_process_approved()["candidates"] == 0
    with pytest.raises(PayoutPermissionError) as exc:
        payout_mark_paid(payout=payout, bank_reference="BANK-1", acting_user=clerk)
    assert str(exc.value) == ERR_NO_MARK_PAID_PERMISSION
    with pytest.raises(PayoutError) as exc:
        payout_mark_paid(payout=payout, bank_reference="  ", acting_user=senior)
    assert str(exc.value) == ERR_BANK_REFERENCE_REQUIRED
    payout_mark_paid(payout=payout, bank_reference=" SEPA-2026-0042 ", acting_user=senior)
    payout.refresh_from_db()
    assert (payout.status, payout.bank_reference, payout.paid_by) == (
        "paid",
        "SEPA-2026-0042",
        senior,
    )
    action = AdminAction.objects.get(action="payout.mark_paid")
    assert (action.actor, action.amount, action.details["bank_reference"]) == (
        senior,
        12_345,
        "SEPA-2026-0042",
    )


def test_a_connect_payout_is_not_marked_paid_by_hand(ada, clerk, senior, connect):
    payout = _run_payout(ada)
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.APPROVED)
    with pytest.raises(PayoutError) as exc:
        payout_mark_paid(payout=payout, bank_reference="X", acting_user=senior)
    assert str(exc.value) == ERR_NOT_BANK_TRANSFER.format(method="Stripe Connect transfer")


def test_the_bank_file_lists_approved_bank_transfers_in_major_units(
    settings, ada, bea, clerk, connect, approve
):
    settings.PAYOUT_MINIMUM = {"usd": "10", "jpy": "1500"}
    yen = InstructorFactory(name="=cmd|' /C calc'!A0", email="ken@example.com", bank_account="JP1")
    earn(yen, 150_000, "jpy")
    payout_run_create()
    for payout in Payout.objects.exclude(instructor=ada):
        approve(payout, clerk)
    pending_bank = InstructorFactory(bank_account="X")
    earn(pending_bank, 5000)
    payout_run_create()  # pending: not in the file
    text = io.StringIO()
    csv.writer(text).writerows(payout_bank_file_rows(Payout.objects.all()))
    rows = list(csv.reader(io.StringIO(text.getvalue())))
    bea_payout = Payout.objects.get(instructor=bea)
    yen_payout = Payout.objects.get(instructor=yen)
    assert yen_payout.pk < bea_payout.pk  # the run creates them by currency, then instructor
    assert rows == [
        BANK_FILE_HEADER,
        [
            f"payout:{yen_payout.pk}",
            "'=cmd|' /C calc'!A0",
            "ken@example.com",
            "JP1",
            "150000",
            "JPY",
        ],
        [
            f"payout:{bea_payout.pk}",
            "Bea",
            "bea@example.com",
            "DE89370400440532013000",
            "123.45",
            "USD",
        ],
    ]


# --- reversals ---------------------------------------------------------------------------------


def _paid(ada, clerk, approve) -> Payout:
    payout = _run_payout(ada)
    approve(payout, clerk)
    payout.refresh_from_db()
    return payout


def test_a_reversal_needs_the_permission_and_fits_in_what_is_left(
    ada, clerk, senior, connect, approve
):
    payout = _paid(ada, clerk, approve)
    with pytest.raises(PayoutPermissionError) as exc:
        payout_reverse(payout=payout, amount=100, reason="Fraud", acting_user=clerk)
    assert str(exc.value) == ERR_NO_REVERSE_PERMISSION
    with pytest.raises(PayoutError) as exc:
        payout_reverse(payout=payout, amount=20_001, reason="Fraud", acting_user=senior)
    assert str(exc.value) == ERR_REVERSAL_ABOVE_LEFT.format(left="$200.00")
    payout = payout_reverse(payout=payout, amount=5000, reason="Fraud", acting_user=senior)
    assert payout.amount_reversed == 5000
    transfer = connect.transfers[payout.stripe_transfer_id]
    assert [r.amount for r in transfer.reversals] == [5000]
    # Landed through the one upsert the sync and webhooks use: the mirror and the entry.
    [reversal] = TransferReversal.objects.all()
    entry = EarningEntry.objects.get(kind=EarningEntry.Kind.PAYOUT_REVERSED)
    assert (entry.reference, entry.amount) == (f"transfer_reversal:{reversal.stripe_id}", 5000)
    assert _balance(ada).available == 5000  # owed to the instructor again
    with pytest.raises(PayoutError) as exc:
        payout_reverse(payout=payout, amount=15_001, reason="More", acting_user=senior)
    assert str(exc.value) == ERR_REVERSAL_ABOVE_LEFT.format(left="$150.00")
    payout_reverse(payout=payout, amount=15_000, reason="More", acting_user=senior)
    assert Payout.objects.get(pk=payout.pk).amount_reversed == 20_000
    assert _balance(ada).available == 20_000
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED).count() == 2
    assert AdminAction.objects.filter(action="payout.reverse", actor=senior).count() == 2


def test_only_a_paid_connect_payout_is_reversed(bea, clerk, senior, connect):
    from payments.payout_rules import ERR_NOT_REVERSIBLE

    payout = _run_payout(bea)
    with pytest.raises(PayoutError) as exc:
        payout_reverse(payout=payout, amount=100, reason="x", acting_user=senior)
    assert str(exc.value) == ERR_NOT_REVERSIBLE


def test_a_bank_payout_pays_the_account_it_was_approved_for(settings, bea, clerk, approve):
    """The account is copied when the payout is made: editing the instructor's account after
    approval (a typo fixed, or an attempt to redirect the money) does not change the file."""
    settings.PAYOUT_MINIMUM = {"usd": "10"}
    payout_run_create()
    payout = Payout.objects.get(instructor=bea)
    assert payout.bank_account == "DE89370400440532013000"
    approve(payout, clerk)
    bea.bank_account = "GB00 SOMEONE ELSE"
    bea.save()
    rows = list(payout_bank_file_rows(Payout.objects.filter(pk=payout.pk)))
    assert rows[1][3] == "DE89370400440532013000"
    earn(bea, 2000)  # something new to pay, to the new account
    manual = payout_manual_create(
        instructor=bea, amount=1000, currency="usd", note="Early", acting_user=clerk
    )
    assert manual.bank_account == "GB00 SOMEONE ELSE"


def test_a_bank_payout_without_a_bank_account_cannot_be_approved(settings, clerk, approve):
    settings.PAYOUT_MINIMUM = {"usd": "10"}
    nobody = InstructorFactory(name="No Bank", bank_account="")
    earn(nobody, 5000)
    payout_run_create()
    payout = Payout.objects.get(instructor=nobody)
    assert (payout.method, payout.bank_account) == (Payout.Method.BANK, "")
    with pytest.raises(PayoutError) as exc:
        approve(payout, clerk)
    assert str(exc.value) == ERR_NO_BANK_ACCOUNT
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PENDING
