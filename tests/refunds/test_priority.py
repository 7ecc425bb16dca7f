"""Priority is a SQL CASE: boundaries of the age tiers, the per-currency LARGE threshold,
and the filter conditions agree with the annotation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from payments.money import to_decimal
from refunds import rules
from refunds.models import RefundRequest
from refunds.selectors import Priority, amount_above_q, priority_q, refund_request_queue
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def _request(*, age, amount=100, currency="usd", status=RefundRequest.Status.PENDING, now):
    payment = PaymentFactory(amount=10**7, currency=currency)
    row = RefundRequestFactory(payment=payment, amount=amount, currency=currency, status=status)
    RefundRequest.objects.filter(pk=row.pk).update(created_at=now - age)
    return row


def _priority(row, now):
    return refund_request_queue(now=now).values_list("priority", flat=True).get(pk=row.pk)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (3 * DAY + SECOND, Priority.URGENT),
        (3 * DAY, Priority.HIGH),  # "more than 3 days": exactly 3 days is not yet urgent
        (2 * DAY, Priority.HIGH),
        (DAY + SECOND, Priority.HIGH),
        (DAY, Priority.NORMAL),
        (DAY - SECOND, Priority.NORMAL),
        (timedelta(0), Priority.NORMAL),
    ],
)
def test_age_tiers(age, expected):
    now = timezone.now()
    row = _request(age=age, now=now)
    assert _priority(row, now) == expected


LARGE = {"usd": "50.00", "eur": "50.00", "gbp": "40.00", "jpy": "7500"}


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("usd", 5000, Priority.NORMAL),  # 50.00 is not more than 50.00
        ("usd", 5001, Priority.LARGE),
        ("eur", 5000, Priority.NORMAL),
        ("eur", 5001, Priority.LARGE),
        ("gbp", 4000, Priority.NORMAL),
        ("gbp", 4001, Priority.LARGE),
        ("gbp", 4500, Priority.LARGE),  # 45 pounds: large in GBP, though under USD's 50
        ("jpy", 51, Priority.NORMAL),  # the case: 51 yen is not a large refund
        ("jpy", 5001, Priority.NORMAL),
        ("jpy", 7500, Priority.NORMAL),
        ("jpy", 7501, Priority.LARGE),
        # No value for KWD or CHF: 0, the strictest rule, never USD's 50 read as 50 KWD.
        ("kwd", 1, Priority.LARGE),
        ("chf", 1, Priority.LARGE),
    ],
)
def test_large_threshold_is_per_currency(settings, currency, amount, expected):
    settings.REFUND_LARGE_AMOUNT = LARGE
    now = timezone.now()
    row = _request(age=timedelta(hours=1), amount=amount, currency=currency, now=now)
    assert _priority(row, now) == expected
    assert rules.is_large(amount=amount, currency=currency) == (expected == Priority.LARGE)


def test_default_large_thresholds_are_per_currency():
    """The shipped defaults (settings/base.py) rank in each currency's own money."""
    now = timezone.now()
    cases = [("usd", 5001), ("eur", 5001), ("gbp", 4001), ("jpy", 7501)]
    for currency, above in cases:
        at = _request(age=timedelta(hours=1), amount=above - 1, currency=currency, now=now)
        over = _request(age=timedelta(hours=1), amount=above, currency=currency, now=now)
        assert (_priority(at, now), _priority(over, now)) == (Priority.NORMAL, Priority.LARGE)


def test_age_beats_size():
    now = timezone.now()
    row = _request(age=4 * DAY, amount=999999, now=now)
    assert _priority(row, now) == Priority.URGENT


def test_thresholds_come_from_settings(settings):
    settings.REFUND_URGENT_AFTER_DAYS = 10
    settings.REFUND_HIGH_AFTER_DAYS = 5
    settings.REFUND_LARGE_AMOUNT = {"usd": "10.00"}
    now = timezone.now()
    assert _priority(_request(age=4 * DAY, now=now), now) == Priority.NORMAL
    assert _priority(_request(age=6 * DAY, now=now), now) == Priority.HIGH
    assert _priority(_request(age=11 * DAY, now=now), now) == Priority.URGENT
    assert _priority(_request(age=DAY, amount=1000, now=now), now) == Priority.NORMAL
    assert _priority(_request(age=DAY, amount=1001, now=now), now) == Priority.LARGE


def test_amount_above_q_shows_one_when_per_configured_currency():
    sql = str(
        RefundRequest.objects.filter(amount_above_q({"usd": "50", "jpy": "7500"})).query
    ).upper()
    assert sql.count("WHEN") == 2
    assert "ELSE 0" in sql


# A few currencies of each kind of minor unit, and one that is never configured.
TWIN_CURRENCIES = ["usd", "eur", "gbp", "jpy", "kwd"]
thresholds_strategy = st.dictionaries(
    st.sampled_from(TWIN_CURRENCIES), st.integers(0, 10**7), max_size=len(TWIN_CURRENCIES)
)
rows_strategy = st.lists(
    st.tuples(st.sampled_from([*TWIN_CURRENCIES, "chf"]), st.integers(1, 10**7)), max_size=20
)


class TestAmountAboveTwins(TestCase):
    """amount_above_q (SQL) and rules.amount_above (Python) agree on every row, boundaries
    included, whatever currencies are configured."""

    @given(minor_thresholds=thresholds_strategy, rows=rows_strategy)
    @hypothesis_settings(max_examples=60, deadline=None)
    def test_sql_and_python_agree(self, minor_thresholds, rows):
        thresholds = {
            currency: str(to_decimal(minor, currency))
            for currency, minor in minor_thresholds.items()
        }
        # Exactly at, just below and just above every configured threshold.
        rows = rows + [
            (currency, amount)
            for currency, minor in minor_thresholds.items()
            for amount in (minor - 1, minor, minor + 1)
            if amount > 0
        ]
        payments = {
            currency: PaymentFactory(amount=10**8, currency=currency)
            for currency in {currency for currency, _ in rows}
        }
        created = RefundRequest.objects.bulk_create(
            RefundRequest(payment=payments[currency], amount=amount, currency=currency)
            for currency, amount in rows
        )
        by_sql = set(
            RefundRequest.objects.filter(amount_above_q(thresholds)).values_list("pk", flat=True)
        )
        by_python = {
            row.pk
            for row in created
            if rules.amount_above(amount=row.amount, currency=row.currency, thresholds=thresholds)
        }
        assert by_sql == by_python


@pytest.mark.parametrize("status", [s for s in RefundRequest.Status if s != "pending"])
def test_only_pending_requests_have_a_priority(status):
    now = timezone.now()
    row = _request(age=5 * DAY, amount=999999, status=status, now=now)
    assert _priority(row, now) == ""
    assert refund_request_queue(now=now).values_list("priority_rank", flat=True).get(pk=row.pk) == 4


def test_filter_conditions_match_the_annotation():
    now = timezone.now()
    for age in (0.5, 1.5, 2.5, 3.5, 10):
        for amount in (100, 5000, 5001, 90000):
            _request(age=timedelta(days=age), amount=amount, now=now)
    _request(age=5 * DAY, status=RefundRequest.Status.APPROVED, now=now)
    annotated = refund_request_queue(now=now)
    for value, _ in Priority.CHOICES:
        by_case = set(annotated.filter(priority=value).values_list("pk", flat=True))
        by_q = set(
            RefundRequest.objects.filter(priority_q(value, now=now)).values_list("pk", flat=True)
        )
        assert by_case == by_q
        assert by_case  # every tier is represented


def test_queue_orders_by_rank_then_oldest_first():
    now = timezone.now()
    young_normal = _request(age=timedelta(hours=1), now=now)
    old_normal = _request(age=timedelta(hours=20), now=now)
    large = _request(age=timedelta(hours=2), amount=6000, now=now)
    high = _request(age=2 * DAY, now=now)
    older_urgent = _request(age=9 * DAY, now=now)
    urgent = _request(age=4 * DAY, now=now)
    order = list(refund_request_queue(now=now).values_list("pk", flat=True))
    assert order == [
        older_urgent.pk,
        urgent.pk,
        high.pk,
        large.pk,
        old_normal.pk,
        young_normal.pk,
    ]
