"""Payouts against the Stripe peer over real HTTP (the project's localstripe launcher with
Connect, scripts/localstripe_connect.py): the transfer Stripe holds after approval, a lost or
late answer resumed into exactly one transfer, Stripe's refusal returning the money, and a
reversal landing in the ledger."""

import pytest
import requests

from payments import gateway
from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry, Payout, Transfer
from payments.services.payouts import (
    payout_approve,
    payout_process,
    payout_reverse,
    payout_run_create,
    payouts_process_approved,
)
from tests.factories import InstructorFactory
from tests.payouts.conftest import arm_fault, earn

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def approve(django_capture_on_commit_callbacks, clerk):
    def run(payout):
        with django_capture_on_commit_callbacks(execute=True):
            payout_approve(payout=payout, acting_user=clerk)
        payout.refresh_from_db()
        return payout

    return run


def _transfers_of(payout):
    return gateway.stripe_transfer_list(transfer_group=f"payout:{payout.pk}")


def _available(instructor):
    return earning_balances(instructor_ids=[instructor.pk])[(instructor.pk, "usd")].available


def _run_payout(instructor):
    payout_run_create()
    return Payout.objects.get(instructor=instructor)


def test_approval_makes_the_transfer_in_stripe(ines, approve):
    payout = approve(_run_payout(ines))
    assert payout.status == Payout.Status.PAID
    [made] = _transfers_of(payout)
    assert (made.id, made.amount, made.currency, made.destination) == (
        payout.stripe_transfer_id,
        25_000,
        "usd",
        ines.stripe_account_id,
    )
    assert made.metadata["payout_id"] == str(payout.pk)
    mirror = Transfer.objects.get(stripe_id=made.id)
    assert (mirror.payout, mirror.instructor, mirror.amount) == (payout, ines, 25_000)
    assert _available(ines) == 0


@pytest.mark.parametrize("fault", [{"mode": "delay", "seconds": 1.5}, {"mode": "500"}])
def test_a_lost_or_late_answer_then_resume_makes_one_transfer(ines, approve, settings, peer, fault):
    settings.STRIPE_MAX_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    arm_fault(peer, **fault)
    payout = approve(_run_payout(ines))
    # Stripe made it; we do not know: the payout waits, its claim released.
    assert (payout.status, payout.processing_started_at) == (Payout.Status.PROCESSING, None)
    assert len(_transfers_of(payout)) == 1
    settings.STRIPE_TIMEOUT_SECONDS = 10
    result = payouts_process_approved()
    assert (result["paid"], result["unknown_outcome"]) == (1, 0)
    payout.refresh_from_db()
    [made] = _transfers_of(payout)
    assert (payout.status, payout.stripe_transfer_id, payout.attempts) == ("paid", made.id, 2)
    # Processing again: nothing new in Stripe.
    payout_process(payout_id=payout.pk)
    assert len(gateway.stripe_transfer_list()) == 1


def test_stripe_refusing_the_transfer_returns_the_money(ines, approve, peer):
    # The account lost its transfers capability (a review): Stripe refuses the transfer.
    requests.post(
        f"{peer.url}/_config/accounts/{ines.stripe_account_id}",
        json={"transfers": "inactive"},
        timeout=5,
    ).raise_for_status()
    payout = approve(_run_payout(ines))
    assert payout.status == Payout.Status.FAILED
    assert payout.failure_code == "insufficient_capabilities_for_transfer"
    assert _transfers_of(payout) == []
    assert _available(ines) == 25_000
    assert EarningEntry.objects.filter(
        reference=f"payout:{payout.pk}:returned", amount=25_000
    ).exists()


def test_an_insufficient_platform_balance_fails_the_payout(ines, approve, peer):
    arm_fault(peer, mode="balance_insufficient")
    payout = approve(_run_payout(ines))
    assert (payout.status, payout.failure_code) == ("failed", "balance_insufficient")
    assert _available(ines) == 25_000
    # The next run pays again, with a new payout and key; Stripe has the funds now.
    payout_run_create()
    retry = Payout.objects.get(status=Payout.Status.PENDING)
    assert approve(retry).status == Payout.Status.PAID


def test_a_reversal_pulls_money_back_and_owes_it_to_the_instructor_again(
    ines, approve, senior, peer
):
    payout = approve(_run_payout(ines))
    payout = payout_reverse(payout=payout, amount=10_000, reason="Chargeback", acting_user=senior)
    assert payout.amount_reversed == 10_000
    [made] = _transfers_of(payout)
    assert (made.amount_reversed, [r.amount for r in made.reversals]) == (10_000, [10_000])
    reversal = made.reversals[0]
    entry = EarningEntry.objects.get(reference=f"transfer_reversal:{reversal.id}")
    assert (entry.kind, entry.amount, entry.payout) == ("payout_reversed", 10_000, payout)
    assert _available(ines) == 10_000


def test_a_bank_transfer_payout_never_reaches_stripe(peer, approve):
    bea = InstructorFactory(bank_account="DE89370400440532013000")
    earn(bea, 5000)
    payout = approve(_run_payout(bea))
    assert payout.status == Payout.Status.APPROVED
    assert gateway.stripe_transfer_list() == []
