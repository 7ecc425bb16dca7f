"""payments/hours.py: credits and debits exactly once, FIFO over unexpired packages, expiry,
reservations, and the invariants (balance = sum of entries = sum of packages' remaining)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from payments import hours, hours_selectors
from payments.models import BalanceEntry, HourDraw, HourPackage, StudentBalance
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

Kind = BalanceEntry.Kind


def assert_consistent(customer) -> StudentBalance:
    """The ledger's invariants, recomputed the obvious way."""
    balance = StudentBalance.objects.get(customer=customer)
    entries = balance.entries.aggregate(total=Sum("minutes"))["total"] or 0
    assert balance.minutes == entries
    assert (
        sum(HourPackage.objects.filter(balance=balance).values_list("remaining", flat=True))
        == balance.minutes
    )
    for entry in balance.entries.all():
        assert sum(entry.draws.values_list("minutes", flat=True)) == entry.minutes
    for package in HourPackage.objects.filter(balance=balance):
        drawn = HourDraw.objects.filter(package=package).aggregate(t=Sum("minutes"))["t"] or 0
        assert package.remaining == drawn
    return balance


def credit(customer, minutes, ref, *, days=30):
    return hours.credit_minutes(
        customer_id=customer.pk,
        minutes=minutes,
        kind=Kind.ADJUSTMENT,
        reference=ref,
        expires_at=timezone.now() + timedelta(days=days),
    )


def lesson(customer, step, booking="bk1", **kwargs):
    """One lesson step through a unit of work of its own, as the import runs them."""
    with transaction.atomic():
        ledger = hours.HoursLedger()
        entry = getattr(ledger, step)(ledger.balance(customer.pk), booking_id=booking, **kwargs)
        ledger.flush()
        return entry


def remaining(ref):
    return HourPackage.objects.get(reference=ref).remaining


def test_credit_and_debit_apply_once_per_reference():
    customer = CustomerFactory()
    assert credit(customer, 600, "c1") is not None
    assert credit(customer, 600, "c1") is None
    entry = hours.debit_minutes(
        customer_id=customer.pk, minutes=90, kind=Kind.USAGE, reference="d1", note="Lesson"
    )
    assert entry.minutes == -90
    assert (
        hours.debit_minutes(customer_id=customer.pk, minutes=90, kind=Kind.USAGE, reference="d1")
        is None
    )
    balance = assert_consistent(customer)
    assert balance.minutes == 510


def test_debits_draw_from_the_package_expiring_first():
    customer = CustomerFactory()
    credit(customer, 120, "late", days=90)
    credit(customer, 60, "soon", days=10)
    credit(customer, 60, "middle", days=40)
    hours.debit_minutes(customer_id=customer.pk, minutes=90, kind=Kind.USAGE, reference="d")
    assert (remaining("soon"), remaining("middle"), remaining("late")) == (0, 30, 120)
    entry = BalanceEntry.objects.get(reference="d")
    assert sorted(entry.draws.values_list("package__reference", "minutes")) == [
        ("middle", -30),
        ("soon", -60),
    ]
    assert_consistent(customer)


def test_expired_packages_are_not_drawn_and_a_debit_beyond_the_rest_is_refused():
    customer = CustomerFactory()
    credit(customer, 600, "old", days=-1)  # already past its expiry
    credit(customer, 60, "new", days=10)
    with pytest.raises(hours.NotEnoughMinutes) as refused:
        hours.debit_minutes(customer_id=customer.pk, minutes=61, kind=Kind.USAGE, reference="d")
    assert str(refused.value) == hours.ERR_NOT_ENOUGH_MINUTES.format(available=60, minutes=61)
    assert not BalanceEntry.objects.filter(reference="d").exists()
    assert (remaining("old"), remaining("new")) == (600, 60)
    assert_consistent(customer)


@pytest.mark.parametrize("minutes", [0, -5, 1.5, True, "60"])
def test_minutes_must_be_a_positive_integer(minutes):
    customer = CustomerFactory()
    with pytest.raises(hours.HoursError) as refused:
        credit(customer, minutes, "c")
    assert str(refused.value) == hours.ERR_MINUTES_NOT_POSITIVE.format(minutes=minutes)


def test_kinds_are_checked():
    customer = CustomerFactory()
    with pytest.raises(hours.HoursError, match="is not a kind of credit"):
        hours.credit_minutes(customer_id=customer.pk, minutes=5, kind=Kind.USAGE, reference="x")
    with pytest.raises(hours.HoursError, match="is not a kind of debit"):
        hours.debit_minutes(customer_id=customer.pk, minutes=5, kind=Kind.EXPIRY, reference="y")


@override_settings(HOUR_PACKAGE_VALID_DAYS=30)
def test_a_credit_without_expiry_lasts_the_configured_days():
    customer = CustomerFactory()
    before = timezone.now()
    hours.credit_minutes(customer_id=customer.pk, minutes=60, kind=Kind.ADJUSTMENT, reference="c")
    expires = HourPackage.objects.get(reference="c").expires_at
    assert before + timedelta(days=30) <= expires <= timezone.now() + timedelta(days=30)


def test_the_expiry_job_takes_each_remainder_once():
    customer = CustomerFactory()
    credit(customer, 600, "old", days=10)
    credit(customer, 120, "new", days=60)
    hours.debit_minutes(customer_id=customer.pk, minutes=100, kind=Kind.USAGE, reference="d")
    later = timezone.now() + timedelta(days=11)
    result = hours.expire_packages(now=later)
    assert result.as_dict() == {"packages_expired": 1, "minutes_expired": 500}
    assert hours.expire_packages(now=later).as_dict() == {
        "packages_expired": 0,
        "minutes_expired": 0,
    }
    expiry = BalanceEntry.objects.get(kind=Kind.EXPIRY)
    package = HourPackage.objects.get(reference="old")
    assert (expiry.minutes, expiry.reference) == (-500, hours.expiry_reference(package.pk))
    assert (package.remaining, package.expired_at) == (0, later)
    balance = assert_consistent(customer)
    assert balance.minutes == 120
    assert hours_selectors.balance_figures(balance) == hours_selectors.HoursFigures(
        adjusted=720, consumed=100, expired=500, remaining=120
    )


def test_a_reservation_holds_minutes_and_its_cancellation_gives_them_back():
    customer = CustomerFactory()
    credit(customer, 120, "p")
    lesson(customer, "lesson_reserve", minutes=60)
    assert remaining("p") == 60
    assert hours_selectors.balance_figures(assert_consistent(customer)).reserved == 60
    assert lesson(customer, "lesson_cancel") is not None
    assert lesson(customer, "lesson_cancel") is None
    assert remaining("p") == 120
    figures = hours_selectors.balance_figures(assert_consistent(customer))
    assert (figures.reserved, figures.consumed, figures.remaining) == (0, 0, 120)


def test_a_consumed_reservation_stays_on_its_package_even_after_it_expired():
    customer = CustomerFactory()
    credit(customer, 60, "soon", days=1)
    lesson(customer, "lesson_reserve", minutes=60)
    credit(customer, 60, "later", days=30)
    # The first package expires before the lesson is reported taken.
    HourPackage.objects.filter(reference="soon").update(expires_at=timezone.now())
    lesson(customer, "lesson_consume", minutes=60)
    assert lesson(customer, "lesson_consume", minutes=60) is None
    assert (remaining("soon"), remaining("later")) == (0, 60)
    usage = BalanceEntry.objects.get(kind=Kind.USAGE)
    assert list(usage.draws.values_list("package__reference", "minutes")) == [("soon", -60)]
    figures = hours_selectors.balance_figures(assert_consistent(customer))
    assert (figures.reserved, figures.consumed, figures.remaining) == (0, 60, 60)


def test_a_canceled_reservation_on_an_expired_package_expires_at_once():
    customer = CustomerFactory()
    credit(customer, 60, "soon", days=1)
    lesson(customer, "lesson_reserve", minutes=45)
    HourPackage.objects.filter(reference="soon").update(expires_at=timezone.now())
    lesson(customer, "lesson_cancel")
    figures = hours_selectors.balance_figures(assert_consistent(customer))
    assert (figures.reserved, figures.expired, figures.remaining) == (0, 45, 15)


def test_a_credit_settles_a_debt_first():
    customer = CustomerFactory()
    credit(customer, 60, "p")
    with transaction.atomic():
        ledger = hours.HoursLedger()
        balance = ledger.balance(customer.pk)
        package = next(p for p in ledger.packages(balance) if p.reference == "p")
        ledger.debit(
            balance, minutes=100, kind=Kind.REFUND, reference="r", first=package, allow_debt=True
        )
        ledger.flush()
    assert remaining("p") == -40
    assert assert_consistent(customer).minutes == -40
    credit(customer, 100, "next")
    assert (remaining("p"), remaining("next")) == (0, 60)
    assert assert_consistent(customer).minutes == 60


@pytest.mark.django_db
def test_the_expiry_job_locks_balances_in_customer_order():
    """Every writer locks balances in customer-id order (payments/hours.py's lock order), so
    the job and an import over the same students wait for each other, never deadlock."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first, second = CustomerFactory(), CustomerFactory()
    credit(second, 60, "b", days=1)  # the balance created first belongs to the later customer
    credit(first, 60, "a", days=1)
    with CaptureQueriesContext(connection) as queries:
        hours.expire_packages(now=timezone.now() + timedelta(days=2))
    locks = [
        q["sql"] for q in queries.captured_queries if 'FROM "payments_studentbalance"' in q["sql"]
    ]
    assert locks and all(
        sql.endswith('ORDER BY "payments_studentbalance"."customer_id" ASC') for sql in locks
    ), locks
