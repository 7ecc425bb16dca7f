"""The Stripe sync's transfer pass against the project's localstripe launcher: transfers made
at the peer (with reversals) land through upsert_transfers after the disputes' pass, each
reversal's entry once; a second run changes nothing."""

import time

import pytest

from payments import gateway
from payments.models import (
    EarningEntry,
    Payout,
    SyncObjectType,
    SyncState,
    Transfer,
    TransferReversal,
)
from payments.sync_runs import stripe_sync
from tests.factories import InstructorFactory
from tests.management.stripe_peer import setup_peer

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def paid_connect_payout(instructor, *, amount, currency):
    """A paid Connect payout, as payments/services/payouts.py leaves it (without its ledger
    entry: these tests look at what the sync writes)."""
    return Payout.objects.create(
        instructor=instructor,
        amount=amount,
        currency=currency,
        status=Payout.Status.PAID,
        method=Payout.Method.CONNECT,
        destination_account=instructor.stripe_account_id,
    )


def test_the_sync_mirrors_transfers_and_reversals_once(peer):
    known = gateway.stripe_account_create(email="ines@example.com", idempotency_key="a:1")
    unknown = gateway.stripe_account_create(email="nobody@example.com", idempotency_key="a:2")
    ines = InstructorFactory(stripe_account_id=known.id)
    # Only a transfer one of our payouts made moves ledger money when reversed.
    payout = paid_connect_payout(ines, amount=3000, currency="eur")
    to_ines = gateway.stripe_transfer_create(
        amount=3000,
        currency="eur",
        destination=known.id,
        transfer_group=f"payout:{payout.pk}",
        metadata={"payout_id": str(payout.pk)},
        idempotency_key="t:1",
    )
    gateway.stripe_transfer_create(
        amount=700,
        currency="usd",
        destination=unknown.id,
        transfer_group="other",
        metadata={},
        idempotency_key="t:2",
    )
    gateway.stripe_transfer_reversal_create(
        transfer_id=to_ines.id, amount=1000, metadata={}, idempotency_key="r:1"
    )

    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert report.outcomes[SyncObjectType.TRANSFER]["status"] == "succeeded"
    passes = list(report.outcomes)
    assert passes.index(SyncObjectType.TRANSFER) > passes.index(SyncObjectType.DISPUTE)
    assert report.counts["transfer"]["created"] == 2
    assert Transfer.objects.count() == 2 and TransferReversal.objects.count() == 1
    mirrored = Transfer.objects.get(stripe_id=to_ines.id)
    assert (mirrored.instructor, mirrored.amount_reversed, mirrored.currency) == (ines, 1000, "eur")
    assert Transfer.objects.get(destination=unknown.id).instructor is None
    (entry,) = EarningEntry.objects.all()
    assert (entry.instructor, entry.amount, entry.currency, entry.kind) == (
        ines,
        1000,
        "eur",
        EarningEntry.Kind.PAYOUT_REVERSED,
    )
    assert SyncState.objects.get(object_type=SyncObjectType.TRANSFER).watermark is not None

    again = stripe_sync()
    assert again.counts["transfer"] == {"created": 0, "updated": 0, "unchanged": 2, "skipped": 0}
    assert EarningEntry.objects.count() == 1


def test_a_reversal_of_a_transfer_older_than_the_window_is_found_by_its_event(peer, settings):
    settings.STRIPE_SYNC_OVERLAP_SECONDS = 0
    account = gateway.stripe_account_create(email="ines@example.com", idempotency_key="a:1")
    ines = InstructorFactory(stripe_account_id=account.id)
    payout = paid_connect_payout(ines, amount=2000, currency="usd")
    made = gateway.stripe_transfer_create(
        amount=2000,
        currency="usd",
        destination=account.id,
        transfer_group=f"payout:{payout.pk}",
        metadata={"payout_id": str(payout.pk)},
        idempotency_key="t:1",
    )
    assert stripe_sync().counts["transfer"]["created"] == 1
    # The next run's window starts after the transfer's creation: its list page is empty.
    time.sleep(1.1)
    reversal = gateway.stripe_transfer_reversal_create(
        transfer_id=made.id, amount=500, metadata={}, idempotency_key="r:1"
    )

    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert report.counts["transfer"]["updated"] == 1
    assert TransferReversal.objects.get().stripe_id == reversal.id
    assert Transfer.objects.get().amount_reversed == 500
    (entry,) = EarningEntry.objects.all()
    assert (entry.instructor, entry.amount) == (ines, 500)
    # The sweep reads it again next time (the event is still in the window): no change.
    again = stripe_sync()
    assert again.counts["transfer"]["updated"] == 0
    assert EarningEntry.objects.count() == 1
