"""The payout run (`payout_run_create`): who is paid and how much, per currency, in one
set-based pass."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry, Payout, PayoutRun
from payments.services.payouts import (
    ERR_CURRENCY_NOT_CONFIGURED,
    PayoutError,
    payout_cancel,
    payout_run_create,
)
from tests.factories import InstructorFactory
from tests.payouts.conftest import earn

pytestmark = pytest.mark.django_db


def _payouts():
    return {(p.instructor_id, p.currency): p for p in Payout.objects.all()}


def test_the_hold_keeps_recent_earnings_out_of_the_run():
    ada = InstructorFactory()
    earn(ada, 4000, days_ago=30)  # available since 23 days
    earn(ada, 9000, days_ago=3)  # still on hold for 4 days
    result = payout_run_create()
    payout = Payout.objects.get()
    assert (payout.amount, payout.currency, payout.status) == (4000, "usd", Payout.Status.PENDING)
    assert result.totals == {"usd": {"count": 1, "amount": 4000}}
    balance = earning_balances(instructor_ids=[ada.pk])[(ada.pk, "usd")]
    assert (balance.available, balance.on_hold) == (0, 9000)
    # Once the hold is over, the rest is paid by the next run (the first payout is paid).
    Payout.objects.update(status=Payout.Status.PAID)
    payout_run_create(now=timezone.now() + timedelta(days=5))
    assert sorted(Payout.objects.values_list("amount", flat=True)) == [4000, 9000]


def test_the_minimum_is_per_currency(settings):
    settings.PAYOUT_MINIMUM = {"usd": "10.00", "jpy": "1500"}
    below_usd, at_usd, below_jpy, at_jpy = InstructorFactory.create_batch(4)
    earn(below_usd, 999)
    earn(at_usd, 1000)
    earn(below_jpy, 1499, "jpy")
    earn(at_jpy, 1500, "jpy")
    # A currency with no configured minimum is never paid by a run: no USD number for euros.
    earn(at_usd, 50_000, "eur")
    payout_run_create()
    assert {(p.instructor_id, p.currency, p.amount) for p in Payout.objects.all()} == {
        (at_usd.pk, "usd", 1000),
        (at_jpy.pk, "jpy", 1500),
    }


def test_one_currency_only_and_an_unconfigured_currency_is_refused(settings):
    settings.PAYOUT_MINIMUM = {"usd": "10", "eur": "10"}
    ada = InstructorFactory()
    earn(ada, 2000, "usd")
    earn(ada, 3000, "eur")
    result = payout_run_create(currency="EUR")
    assert result.currencies == ["eur"]
    assert list(Payout.objects.values_list("currency", "amount")) == [("eur", 3000)]
    assert PayoutRun.objects.get().currency == "eur"
    with pytest.raises(PayoutError) as exc:
        payout_run_create(currency="gbp")
    assert str(exc.value) == ERR_CURRENCY_NOT_CONFIGURED.format(currency="GBP")


def test_a_payout_takes_the_money_out_of_the_balance_at_once():
    ada = InstructorFactory()
    earn(ada, 5000)
    payout_run_create()
    payout = Payout.objects.get()
    entry = EarningEntry.objects.get(kind=EarningEntry.Kind.PAYOUT)
    assert (entry.reference, entry.amount, entry.payout_id) == (
        f"payout:{payout.pk}",
        -5000,
        payout.pk,
    )
    assert entry.available_at == entry.occurred_at
    assert earning_balances()[(ada.pk, "usd")].balance == 0


def test_a_rerun_pays_nothing_twice_and_an_open_payout_is_skipped():
    ada, bob = InstructorFactory.create_batch(2)
    earn(ada, 5000)
    payout_run_create()
    # New money for Ada while her first payout is still open: she waits for it to settle.
    earn(ada, 3000)
    earn(bob, 2000)
    result = payout_run_create()
    assert result.skipped_open_payout == {"usd": 1}
    assert result.totals == {"usd": {"count": 1, "amount": 2000}}
    assert Payout.objects.filter(instructor=ada).count() == 1
    assert payout_run_create().payouts_created == 0


def test_a_dry_run_writes_nothing_and_says_what_a_run_would_create():
    ada, bob = InstructorFactory.create_batch(2)
    earn(ada, 5000)
    earn(bob, 1200, "eur")
    result = payout_run_create(dry_run=True)
    assert result.run_id is None
    assert result.totals == {
        "eur": {"count": 1, "amount": 1200},
        "usd": {"count": 1, "amount": 5000},
    }
    assert not Payout.objects.exists() and not PayoutRun.objects.exists()
    assert EarningEntry.objects.count() == 2
    assert payout_run_create().totals == result.totals


def test_method_follows_the_connected_account():
    connected = InstructorFactory(stripe_account_id="acct_ada")
    by_bank = InstructorFactory(bank_account="DE89370400440532013000")
    earn(connected, 2000)
    earn(by_bank, 2000)
    payout_run_create()
    payouts = _payouts()
    assert payouts[(connected.pk, "usd")].method == Payout.Method.CONNECT
    assert payouts[(connected.pk, "usd")].destination_account == "acct_ada"
    assert payouts[(by_bank.pk, "usd")].method == Payout.Method.BANK
    assert payouts[(by_bank.pk, "usd")].destination_account == ""


def test_clawback_is_carried_forward_and_netted_from_the_next_payout():
    ada = InstructorFactory()
    earn(ada, 5000)
    payout_run_create()
    Payout.objects.update(status=Payout.Status.PAID)
    # A refund after the payout (of a payment whose hold is over): the balance goes negative.
    earn(ada, -3000, kind=EarningEntry.Kind.REFUND)
    assert earning_balances()[(ada.pk, "usd")].available == -3000
    assert payout_run_create().payouts_created == 0
    # The next earnings pay the debt back first.
    earn(ada, 3500)
    assert payout_run_create().payouts_created == 0  # 5.00 payable: below the minimum
    earn(ada, 1000)
    payout_run_create()
    assert Payout.objects.latest("id").amount == 1500


def test_money_on_hold_that_is_negative_is_not_paid_out_first():
    ada = InstructorFactory()
    earn(ada, 5000)  # available
    # A dispute lost during its payment's hold: the entry waits with the payment, but the
    # balance is already lower, and a run pays the balance, not more.
    earn(ada, -2000, kind=EarningEntry.Kind.DISPUTE_LOST, days_ago=2)
    payout_run_create()
    assert Payout.objects.get().amount == 3000


def test_a_canceled_payout_frees_the_instructor_for_the_next_run(clerk):
    ada = InstructorFactory()
    earn(ada, 5000)
    payout_run_create()
    payout_cancel(payout=Payout.objects.get(), reason="Wrong account", acting_user=clerk)
    payout_run_create()
    assert list(Payout.objects.order_by("id").values_list("status", "amount")) == [
        (Payout.Status.CANCELED, 5000),
        (Payout.Status.PENDING, 5000),
    ]


def test_the_run_is_recorded_and_audited():
    from backoffice.models import AdminAction

    ada = InstructorFactory()
    earn(ada, 5000)
    result = payout_run_create(trigger="schedule")
    run = PayoutRun.objects.get()
    assert (run.pk, run.trigger, run.payouts_created) == (result.run_id, "schedule", 1)
    assert run.totals == {"usd": {"count": 1, "amount": 5000}}
    assert Payout.objects.get().run == run
    action = AdminAction.objects.get(action="payout_run.create")
    assert action.details["totals"] == run.totals
    # Bulk paths write history too (django-simple-history).
    assert Payout.history.count() == 1


def _seed(instructors: int) -> None:
    for instructor in InstructorFactory.create_batch(instructors):
        earn(instructor, 2000)
        earn(instructor, 900, "eur")  # below the minimum
        earn(instructor, 3000, days_ago=1)  # on hold


def _queries_for_a_run() -> int:
    with CaptureQueriesContext(connection) as ctx:
        payout_run_create()
    return len(ctx.captured_queries)


def test_the_number_of_queries_does_not_grow_with_the_instructors():
    _seed(3)
    small = _queries_for_a_run()
    assert Payout.objects.count() == 3
    Payout.objects.update(status=Payout.Status.PAID)
    _seed(60)
    assert _queries_for_a_run() == small
    assert Payout.objects.filter(status=Payout.Status.PENDING).count() == 60


def test_a_person_starting_a_run_needs_the_create_permission(clerk):
    from payments.payout_rules import ERR_NO_CREATE_PERMISSION
    from payments.services.payouts import PayoutPermissionError
    from tests.payouts.conftest import staff

    ada = InstructorFactory()
    earn(ada, 5000)
    with pytest.raises(PayoutPermissionError) as exc:
        payout_run_create(acting_user=staff("viewer", "view_payout"), trigger="admin")
    assert str(exc.value) == ERR_NO_CREATE_PERMISSION
    assert not PayoutRun.objects.exists()
    result = payout_run_create(acting_user=clerk, trigger="admin")
    assert PayoutRun.objects.get(pk=result.run_id).created_by == clerk
