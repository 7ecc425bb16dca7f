"""The Connect transfer mirror (payments.sync.upsert_transfers): transfers and reversals land
as rows, linked to their payout and instructor; each reversal of a linked transfer writes
the instructor's `transfer_reversal:<id>` entry exactly once, available at once; the
payout's amount_reversed follows Stripe's; a re-run writes nothing; a bad object is
refused; the statements per page do not grow with the page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import validation
from payments.earnings_selectors import earning_balances
from payments.gateway import StripeTransfer, StripeTransferReversal
from payments.models import EarningEntry, Payout, Transfer, TransferReversal
from payments.sync import transfer_reversal_reference, upsert_transfers
from tests.factories import InstructorFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def make_payout(instructor, *, amount=5000, currency="usd", account=""):
    """A paid payout and its `payout:<pk>` entry, as payments/services/payouts.py leaves it."""
    payout = Payout.objects.create(
        instructor=instructor,
        amount=amount,
        currency=currency,
        status=Payout.Status.PAID,
        destination_account=account or instructor.stripe_account_id,
    )
    EarningEntry.objects.create(
        instructor=instructor,
        payout=payout,
        currency=currency,
        amount=-amount,
        kind=EarningEntry.Kind.PAYOUT,
        reference=f"payout:{payout.pk}",
        occurred_at=T0,
        available_at=T0,
    )
    return payout


def reversal(rid, transfer_id, amount, *, currency="usd", minutes=60):
    return StripeTransferReversal(
        id=rid,
        transfer_id=transfer_id,
        amount=amount,
        currency=currency,
        created=T0 + timedelta(minutes=minutes),
    )


def transfer(tid, *, destination="acct_ines", amount=5000, currency="usd", payout=None, **kw):
    reversals = kw.pop("reversals", [])
    metadata = kw.pop("metadata", {"payout_id": str(payout.pk)} if payout else {})
    return StripeTransfer(
        id=tid,
        amount=amount,
        currency=currency,
        destination=destination,
        created=T0,
        amount_reversed=sum(r.amount for r in reversals),
        reversed=sum(r.amount for r in reversals) == amount,
        transfer_group=f"payout:{payout.pk}" if payout else "",
        metadata=metadata,
        reversals=reversals,
        **kw,
    )


def balance(instructor, currency="usd"):
    found = earning_balances(instructor_ids=[instructor.pk], currency=currency)
    row = found.get((instructor.pk, currency))
    return row.balance if row else 0


@pytest.fixture
def ines():
    return InstructorFactory(name="Ines", stripe_account_id="acct_ines")


def test_a_transfer_links_to_its_payout_and_instructor(ines):
    payout = make_payout(ines)
    result = upsert_transfers([transfer("tr_1", payout=payout)])
    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    row = Transfer.objects.get()
    assert (row.stripe_id, row.payout, row.instructor, row.amount, row.currency) == (
        "tr_1",
        payout,
        ines,
        5000,
        "usd",
    )
    assert (row.destination, row.transfer_group, row.metadata, row.created) == (
        "acct_ines",
        f"payout:{payout.pk}",
        {"payout_id": str(payout.pk)},
        T0,
    )
    assert not EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED).exists()


def test_a_reversal_gives_the_money_back_to_the_instructor_once(ines):
    payout = make_payout(ines)
    upsert_transfers([transfer("tr_1", payout=payout)])
    assert balance(ines) == -5000
    reversed_once = transfer("tr_1", payout=payout, reversals=[reversal("trr_1", "tr_1", 2000)])
    for _ in range(3):  # a webhook, its replay, and the sync's page
        upsert_transfers([reversed_once])
    entry = EarningEntry.objects.get(kind=EarningEntry.Kind.PAYOUT_REVERSED)
    assert (entry.reference, entry.amount, entry.currency, entry.instructor, entry.payout) == (
        transfer_reversal_reference("trr_1"),
        2000,
        "usd",
        ines,
        payout,
    )
    # Owed again at once: available from when Stripe pulled it back.
    assert entry.occurred_at == entry.available_at == T0 + timedelta(minutes=60)
    assert balance(ines) == -3000
    payout.refresh_from_db()
    assert payout.amount_reversed == 2000
    mirrored = TransferReversal.objects.get()
    assert (mirrored.stripe_id, mirrored.transfer.stripe_id, mirrored.amount) == (
        "trr_1",
        "tr_1",
        2000,
    )

    fully = transfer(
        "tr_1",
        payout=payout,
        reversals=[reversal("trr_2", "tr_1", 3000, minutes=90), reversal("trr_1", "tr_1", 2000)],
    )
    upsert_transfers([fully])
    upsert_transfers([fully])
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED).count() == 2
    assert balance(ines) == 0
    payout.refresh_from_db()
    assert payout.amount_reversed == 5000
    row = Transfer.objects.get()
    assert (row.amount_reversed, row.reversed) == (5000, True)


def test_a_rerun_over_the_same_transfers_writes_nothing(ines):
    payout = make_payout(ines)
    page = [transfer("tr_1", payout=payout, reversals=[reversal("trr_1", "tr_1", 100)])]
    upsert_transfers(page)
    with CaptureQueriesContext(connection) as ctx:
        result = upsert_transfers(page)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1)
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert writes == []


def test_a_transfer_to_an_account_we_do_not_know_is_mirrored_unlinked_then_linked():
    """A transfer no payout of ours made (sent from the dashboard) is mirrored and shown on its
    instructor, but its reversal gives nothing back: it was never taken off the balance, so a
    credit would be money out of nothing."""
    page = [transfer("tr_9", destination="acct_later", reversals=[reversal("trr_9", "tr_9", 500)])]
    upsert_transfers(page)
    row = Transfer.objects.get()
    assert (row.payout, row.instructor) == (None, None)
    assert not EarningEntry.objects.exists()

    later = InstructorFactory(stripe_account_id="acct_later")
    result = upsert_transfers(page)
    assert result.updated == 1
    assert Transfer.objects.get().instructor == later
    assert not EarningEntry.objects.exists()
    assert balance(later) == 0


def test_metadata_naming_a_bank_transfer_payout_does_not_link_it(ines):
    """A bank-transfer payout has no account; metadata naming it (typed in the dashboard) must
    not let a transfer to any account reverse money into its instructor's balance."""
    bank = InstructorFactory(name="Bo", stripe_account_id="")
    bank_payout = make_payout(bank, account="-")
    Payout.objects.filter(pk=bank_payout.pk).update(
        method=Payout.Method.BANK, destination_account=""
    )
    upsert_transfers(
        [
            transfer(
                "tr_x",
                destination="acct_ines",
                metadata={"payout_id": str(bank_payout.pk)},
                reversals=[reversal("trr_x", "tr_x", 700)],
            )
        ]
    )
    row = Transfer.objects.get()
    assert (row.payout, row.instructor) == (None, ines)
    assert not EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED).exists()
    bank_payout.refresh_from_db()
    assert bank_payout.amount_reversed == 0
    assert (balance(bank), balance(ines)) == (-5000, 0)


def test_metadata_naming_a_payout_in_another_currency_or_account_does_not_link_it(ines):
    euro_payout = make_payout(ines, currency="eur")
    other = InstructorFactory(stripe_account_id="acct_other")
    others_payout = make_payout(other, amount=5000)
    upsert_transfers(
        [
            transfer("tr_eur", payout=euro_payout, currency="usd"),
            transfer("tr_acct", payout=others_payout, destination="acct_ines"),
        ]
    )
    by_id = {t.stripe_id: t for t in Transfer.objects.all()}
    assert by_id["tr_eur"].payout is None and by_id["tr_eur"].instructor == ines
    assert by_id["tr_acct"].payout is None and by_id["tr_acct"].instructor == ines


def test_a_link_once_made_is_kept_when_the_metadata_changes(ines):
    payout = make_payout(ines)
    upsert_transfers([transfer("tr_1", payout=payout)])
    upsert_transfers([transfer("tr_1", metadata={"note": "edited in the dashboard"})])
    assert Transfer.objects.get().payout == payout


def test_a_bad_transfer_is_refused_and_the_rest_of_the_page_lands(ines):
    bad = transfer("tr_bad", amount=100, reversals=[reversal("trr_x", "tr_bad", 150)])
    wrong_currency = transfer("tr_cur", reversals=[reversal("trr_y", "tr_cur", 10, currency="eur")])
    result = upsert_transfers(
        [bad, wrong_currency, transfer("po_1"), transfer("tr_ok"), transfer("tr_d", destination="")]
    )
    assert result.created == 1 and result.skipped == 4
    assert set(result.invalid) == {"tr_bad", "tr_cur", "po_1", "tr_d"}
    assert result.invalid["tr_bad"] == validation.ERR_REVERSED_ABOVE_AMOUNT.format(
        id="tr_bad", field="amount_reversed", reversed="$1.50", amount="$1.00"
    )
    assert result.invalid["tr_d"] == validation.ERR_NO_DESTINATION.format(id="tr_d")
    assert list(Transfer.objects.values_list("stripe_id", flat=True)) == ["tr_ok"]
    assert not TransferReversal.objects.exists()


def test_statements_per_page_do_not_grow_with_the_page():
    def page(prefix, n):
        instructors = [InstructorFactory(stripe_account_id=f"acct_{prefix}{i}") for i in range(n)]
        payouts = [make_payout(i) for i in instructors]
        return [
            transfer(
                f"tr_{prefix}{i}",
                destination=f"acct_{prefix}{i}",
                payout=p,
                reversals=[reversal(f"trr_{prefix}{i}", f"tr_{prefix}{i}", 100)],
            )
            for i, p in enumerate(payouts)
        ]

    small, large = page("s", 2), page("l", 20)
    # Payouts whose amount_reversed is already Stripe's: those are saved one by one (with
    # their history) when it changes, as a reversal is rare; everything else is per page.
    Payout.objects.update(amount_reversed=100)
    counts = []
    for rows in (small, large):
        with CaptureQueriesContext(connection) as ctx:
            upsert_transfers(rows)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED).count() == 22
