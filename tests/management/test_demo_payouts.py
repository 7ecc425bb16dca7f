"""The demo's payouts: a run over the demo's earnings and its payouts walked through every
status by demo staff, a clawback (a negative balance) and earning adjustments, all through
the payout and adjustment services; Connect payouts through localstripe."""

import io

import pytest
from django.utils import timezone

from backoffice.models import AdminAction
from management.demo_data import DemoGenerator, demo_size
from management.demo_payouts import (
    BANK_INSTRUCTORS,
    CANCEL_REASON,
    CLAWBACK_DISPUTE_ID,
    WARN_NO_STRIPE,
    seed_payouts,
)
from payments import gateway
from payments.earnings_selectors import earning_balances
from payments.models import EarningAdjustment, EarningEntry, Instructor, Payout, Transfer
from payments.services.payouts import payout_reference, payouts_process_approved
from reports.statements import instructor_statement

pytestmark = pytest.mark.django_db


def statuses() -> dict[str, int]:
    counts = dict.fromkeys(Payout.Status.values, 0)
    for status in Payout.objects.values_list("status", flat=True):
        counts[status] += 1
    return counts


def test_without_a_peer_bank_transfers_show_their_statuses_and_connect_waits(settings):
    settings.STRIPE_API_BASE = ""
    DemoGenerator(seed=5).run(demo_size(400))
    out = io.StringIO()
    counts = seed_payouts(stdout=out)
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    shown = statuses()
    assert {k: v for k, v in counts.items() if k in shown} == shown
    assert shown["paid"] == shown["approved"] == shown["canceled"] == 1
    assert shown["processing"] == shown["failed"] == 0
    assert not Payout.objects.filter(method=Payout.Method.CONNECT).exclude(status="pending")

    iris, tomas, amara = (Instructor.objects.get(email=spec.email) for spec in BANK_INSTRUCTORS)
    assert iris.bank_account and iris.stripe_account_id == ""
    paid = Payout.objects.get(status="paid")
    assert (paid.instructor, paid.method, paid.paid_by.username) == (
        iris,
        Payout.Method.BANK,
        "payouts.sam",
    )
    assert paid.bank_reference.startswith("BACS-")
    assert Payout.objects.get(status="approved").instructor == tomas
    canceled = Payout.objects.get(status="canceled")
    assert (canceled.instructor, canceled.cancel_reason) == (amara, CANCEL_REASON)
    # Its money came back, then was asked for again by hand: pending, for someone else.
    manual = Payout.objects.get(source=Payout.Source.MANUAL)
    assert (manual.instructor, manual.amount, manual.status) == (amara, canceled.amount, "pending")
    assert manual.requested_by.username == "payouts.pia"

    # The clawback: Iris was paid, then lost a dispute: she owes money, available at once.
    balance = earning_balances(instructor_ids=[iris.pk], currency="usd")[(iris.pk, "usd")]
    assert balance.balance == balance.available < 0
    lost = EarningEntry.objects.get(reference=f"dispute:{CLAWBACK_DISPUTE_ID}:lost")
    assert lost.amount < 0
    statement = instructor_statement(
        instructor=iris, currency="usd", month=timezone.localdate().replace(day=1)
    )
    assert statement.closing_balance == balance.balance
    # The next run nets it: no payout while the balance is negative.
    assert not Payout.objects.filter(instructor=iris, status="pending").exists()

    adjustments = sorted(EarningAdjustment.objects.values_list("status", flat=True))
    assert adjustments == ["applied", "pending", "pending", "rejected"]
    applied = EarningAdjustment.objects.get(status="applied")
    assert applied.entry.amount == applied.amount
    assert {applied.requested_by.username, applied.decided_by.username} == {
        "payouts.pia",
        "payouts.sam",
    }
    # Through the services: each step left its audit row.
    actions = set(AdminAction.objects.values_list("action", flat=True))
    assert {
        "payout_run.create",
        "payout.approve",
        "payout.mark_paid",
        "payout.cancel",
        "payout.create",
        "earning_adjustment.request",
        "earning_adjustment.approve",
        "earning_adjustment.reject",
    } <= actions
    # Idempotent: a second seeding adds nothing.
    assert seed_payouts() == {}
    assert statuses() == shown


@pytest.mark.stripe
def test_with_the_peer_connect_payouts_are_paid_failed_and_processing(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    DemoGenerator(seed=5).run(demo_size(400))
    # The demo's instructors get connected accounts in the peer, through the gateway.
    for instructor in Instructor.objects.exclude(stripe_account_id=""):
        account = gateway.stripe_account_create(
            email=instructor.email, name=instructor.name, idempotency_key=f"test:{instructor.pk}"
        )
        instructor.stripe_account_id = account.id
        instructor.save(update_fields=["stripe_account_id"])

    seed_payouts(stdout=io.StringIO())
    shown = statuses()
    assert all(shown.values()), shown  # every status
    assert shown["failed"] == shown["processing"] == 1

    for payout in Payout.objects.filter(method=Payout.Method.CONNECT, status="paid"):
        transfer = Transfer.objects.get(stripe_id=payout.stripe_transfer_id)
        assert (transfer.payout, transfer.amount, transfer.destination) == (
            payout,
            payout.amount,
            payout.destination_account,
        )
    failed = Payout.objects.get(status="failed")
    assert failed.failure_code == "insufficient_capabilities_for_transfer"
    assert EarningEntry.objects.get(reference=f"payout:{failed.pk}:returned").amount == (
        failed.amount
    )

    # The processing one: Stripe made the transfer, the answer was lost. The next processing
    # pass finds it by its transfer_group and records it paid: one transfer, not two.
    processing = Payout.objects.get(status="processing")
    assert processing.processing_started_at is None  # the claim is released
    group = payout_reference(processing.pk)
    assert len(gateway.stripe_transfer_list(transfer_group=group)) == 1
    payouts_process_approved()
    processing.refresh_from_db()
    assert processing.status == "paid"
    assert len(gateway.stripe_transfer_list(transfer_group=group)) == 1
