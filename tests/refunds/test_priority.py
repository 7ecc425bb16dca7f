"""Priority is a SQL CASE: boundaries of the age tiers, the per-currency LARGE threshold,
and the filter conditions agree with the annotation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q, refund_request_queue
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


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("usd", 5000, Priority.NORMAL),  # 50.00 is not more than 50.00
        ("usd", 5001, Priority.LARGE),
        ("eur", 5001, Priority.LARGE),
        ("jpy", 50, Priority.NORMAL),
        ("jpy", 51, Priority.LARGE),
        ("jpy", 5000, Priority.LARGE),
        ("kwd", 50000, Priority.NORMAL),
        ("kwd", 50001, Priority.LARGE),
        ("kwd", 5001, Priority.NORMAL),
    ],
)
def test_large_threshold_is_per_currency(currency, amount, expected):
    now = timezone.now()
    row = _request(age=timedelta(hours=1), amount=amount, currency=currency, now=now)
    assert _priority(row, now) == expected


def test_age_beats_size():
    now = timezone.now()
    row = _request(age=4 * DAY, amount=999999, now=now)
    assert _priority(row, now) == Priority.URGENT


def test_thresholds_come_from_settings(settings):
    settings.REFUND_URGENT_AFTER_DAYS = 10
    settings.REFUND_HIGH_AFTER_DAYS = 5
    settings.REFUND_LARGE_AMOUNT = "10.00"
    now = timezone.now()
    assert _priority(_request(age=4 * DAY, now=now), now) == Priority.NORMAL
    assert _priority(_request(age=6 * DAY, now=now), now) == Priority.HIGH
    assert _priority(_request(age=11 * DAY, now=now), now) == Priority.URGENT
    assert _priority(_request(age=DAY, amount=1001, now=now), now) == Priority.LARGE


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
