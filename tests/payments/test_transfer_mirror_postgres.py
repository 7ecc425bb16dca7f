"""The transfer mirror under concurrency on PostgreSQL, where row locks are real: a webhook
re-read, its replays and the sync landing the same reversed transfer at once write one
transfer row, one reversal row and one `transfer_reversal:<id>` entry, with no error (the
payout is locked first by each, the entry's unique reference settles the rest)."""

import pytest

from payments import sync
from payments.models import EarningEntry, Payout, Transfer, TransferReversal
from tests.factories import InstructorFactory
from tests.payments.test_sync_postgres import run_in_threads
from tests.payments.test_transfer_mirror import reversal, transfer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("with_payout", [True, False])
def test_concurrent_landings_of_one_reversed_transfer_write_each_effect_once(with_payout):
    ines = InstructorFactory(stripe_account_id="acct_ines")
    payout = (
        Payout.objects.create(
            instructor=ines,
            amount=5000,
            currency="usd",
            status=Payout.Status.PAID,
            destination_account="acct_ines",
        )
        if with_payout
        else None
    )
    snapshot = transfer(
        "tr_race",
        payout=payout,
        reversals=[reversal("trr_a", "tr_race", 1000), reversal("trr_b", "tr_race", 500)],
    )
    run_in_threads(10, lambda: sync.upsert_transfers([snapshot]))

    assert Transfer.objects.get().amount_reversed == 1500
    assert TransferReversal.objects.count() == 2
    entries = EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED)
    # Only a payout's transfer was taken off the balance, so only its reversals give back.
    expected = [("transfer_reversal:trr_a", 1000), ("transfer_reversal:trr_b", 500)]
    assert sorted(entries.values_list("reference", "amount")) == (expected if payout else [])
    if payout:
        payout.refresh_from_db()
        assert payout.amount_reversed == 1500
