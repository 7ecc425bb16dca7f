"""Rollups equal a brute-force recomputation in Python, and re-running changes nothing."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from payments.models import Dispute, Payment, Refund
from reports.models import DailyRollup
from reports.rollups import (
    ERR_RANGE_REVERSED,
    UNKNOWN_REASON,
    average_minor,
    generate_analytics,
    percent,
)
from tests.factories import CustomerFactory, InstructorFactory

START = date(2026, 3, 1)
DAYS = 4
STATUSES = [choice for choice, _ in Payment.Status.choices]
METHODS = ["card", "wallet", "sepa_debit"]
CURRENCIES = ["usd", "eur", "jpy"]
REASONS = [("card_declined", "insufficient_funds"), ("expired_card", ""), ("", "")]

payment_rows = st.lists(
    st.tuples(
        st.integers(0, DAYS * 24 * 60 - 1),  # minute offset from START 00:00 UTC
        st.sampled_from(CURRENCIES),
        st.sampled_from(STATUSES),
        st.sampled_from(METHODS),
        st.integers(1, 500_000),  # amount, minor units
        st.sampled_from(REASONS),
        st.integers(0, 3),  # 0: no refund; else refund 1/n of amount
        st.booleans(),  # disputed
    ),
    max_size=25,
)


def _make(rows):
    customer, instructor = CustomerFactory(), InstructorFactory()
    base = datetime(2026, 3, 1, tzinfo=UTC)
    payments = []
    for i, (minute, currency, status, method, amount, (code, decline), _, _) in enumerate(rows):
        captured = status in Payment.CAPTURED_STATUSES
        stripe_fee = amount // 30 if captured else 0
        platform_fee = amount // 5 if captured else 0
        payments.append(
            Payment(
                stripe_payment_intent_id=f"pi_h{i}",
                customer=customer,
                instructor=instructor,
                amount=amount,
                currency=currency,
                status=status,
                payment_method_type=method,
                failure_code=code if status == Payment.Status.FAILED else "",
                decline_code=decline if status == Payment.Status.FAILED else "",
                stripe_fee=stripe_fee,
                platform_fee=platform_fee,
                net=amount - stripe_fee - platform_fee if captured else 0,
                created=base + timedelta(minutes=minute),
            )
        )
    payments = Payment.objects.bulk_create(payments)
    refunds, disputes = [], []
    for payment, row in zip(payments, rows, strict=True):
        refund, disputed = row[6], row[7]
        if refund:
            refunds.append(
                Refund(
                    stripe_id=f"re_h{payment.pk}",
                    payment=payment,
                    amount=max(1, payment.amount // refund),
                    currency=payment.currency,
                    # Only succeeded refunds count; make some pending.
                    status=Refund.Status.SUCCEEDED if refund != 3 else Refund.Status.PENDING,
                    created=payment.created + timedelta(hours=refund * 7),
                )
            )
        if disputed:
            disputes.append(
                Dispute(
                    stripe_id=f"dp_h{payment.pk}",
                    payment=payment,
                    amount=payment.amount,
                    currency=payment.currency,
                    status=Dispute.Status.NEEDS_RESPONSE,
                    created=payment.created + timedelta(hours=30),
                )
            )
    Refund.objects.bulk_create(refunds)
    Dispute.objects.bulk_create(disputes)


def brute_force(start: date, end: date) -> dict:
    """The same figures, one Python loop over every row: the definition, not the method."""
    out = defaultdict(
        lambda: {
            "attempted_count": 0,
            "succeeded_count": 0,
            "failed_count": 0,
            "canceled_count": 0,
            "refunded_count": 0,
            "refunded_amount": 0,
            "gross_amount": 0,
            "stripe_fee_amount": 0,
            "platform_fee_amount": 0,
            "net_amount": 0,
            "payment_methods": {},
            "failure_reasons": {},
            "disputes_opened": 0,
        }
    )

    def in_range(moment):
        day = timezone.localtime(moment).date()
        return day if start <= day <= end else None

    for p in Payment.objects.all():
        day = in_range(p.created)
        if day is None:
            continue
        row = out[(day, p.currency)]
        captured = p.status in Payment.CAPTURED_STATUSES
        row["attempted_count"] += 1
        method = row["payment_methods"].setdefault(
            p.payment_method_type, {"attempted": 0, "succeeded": 0, "amount": 0}
        )
        method["attempted"] += 1
        if captured:
            row["succeeded_count"] += 1
            row["gross_amount"] += p.amount
            row["stripe_fee_amount"] += p.stripe_fee
            row["platform_fee_amount"] += p.platform_fee
            row["net_amount"] += p.net
            method["succeeded"] += 1
            method["amount"] += p.amount
        if p.status == Payment.Status.FAILED:
            row["failed_count"] += 1
            reason = p.decline_code or p.failure_code or UNKNOWN_REASON
            row["failure_reasons"][reason] = row["failure_reasons"].get(reason, 0) + 1
        if p.status == Payment.Status.CANCELED:
            row["canceled_count"] += 1
    for r in Refund.objects.filter(status=Refund.Status.SUCCEEDED):
        day = in_range(r.created)
        if day is not None:
            out[(day, r.currency)]["refunded_count"] += 1
            out[(day, r.currency)]["refunded_amount"] += r.amount
    for d in Dispute.objects.all():
        day = in_range(d.created)
        if day is not None:
            out[(day, d.currency)]["disputes_opened"] += 1
    for row in out.values():
        decided = row["succeeded_count"] + row["failed_count"]
        row["success_rate"] = percent(row["succeeded_count"], decided)
        row["conversion_rate"] = percent(row["succeeded_count"], row["attempted_count"])
        row["average_amount"] = average_minor(row["gross_amount"], row["succeeded_count"])
    return dict(out)


def stored() -> dict:
    keys = [
        "attempted_count",
        "succeeded_count",
        "failed_count",
        "canceled_count",
        "refunded_count",
        "refunded_amount",
        "gross_amount",
        "stripe_fee_amount",
        "platform_fee_amount",
        "net_amount",
        "payment_methods",
        "failure_reasons",
        "disputes_opened",
        "success_rate",
        "conversion_rate",
        "average_amount",
    ]
    return {
        (row.day, row.currency): {key: getattr(row, key) for key in keys}
        for row in DailyRollup.objects.all()
    }


class RollupsMatchBruteForce(TestCase):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rows=payment_rows)
    def test_rollups_equal_python_recomputation_and_rerun_changes_nothing(self, rows):
        _make(rows)
        end = START + timedelta(days=DAYS)  # refunds/disputes spill past the payment days
        first = generate_analytics(start=START, end=end)
        self.assertEqual(stored(), brute_force(START, end))
        self.assertEqual(first.created, DailyRollup.objects.count())

        before = list(DailyRollup.objects.order_by("pk").values())
        again = generate_analytics(start=START, end=end)
        self.assertEqual((again.created, again.updated, again.deleted), (0, 0, 0))
        self.assertEqual(again.unchanged, len(before))
        self.assertEqual(list(DailyRollup.objects.order_by("pk").values()), before)

    @settings(max_examples=8, deadline=None)
    @given(rows=payment_rows)
    def test_days_follow_the_site_time_zone(self, rows):
        with override_settings(TIME_ZONE="America/New_York"):
            _make(rows)
            end = START + timedelta(days=DAYS)
            generate_analytics(start=START, end=end)
            self.assertEqual(stored(), brute_force(START, end))


@pytest.mark.django_db
def test_a_partial_range_recomputes_only_its_days():
    _make([(60, "usd", "succeeded", "card", 1000, ("", ""), 0, False)] * 1)
    generate_analytics(start=START, end=START)
    generate_analytics(start=START + timedelta(days=1), end=START + timedelta(days=2))
    assert list(DailyRollup.objects.values_list("day", "currency")) == [(START, "usd")]


@pytest.mark.django_db
def test_rows_of_days_without_activity_any_more_are_removed():
    _make([(60, "usd", "succeeded", "card", 1000, ("", ""), 0, False)])
    generate_analytics(start=START, end=START)
    Payment.objects.all().delete()
    result = generate_analytics(start=START, end=START)
    assert result.deleted == 1
    assert not DailyRollup.objects.exists()


@pytest.mark.django_db
def test_a_changed_payment_updates_its_row_only():
    _make(
        [
            (60, "usd", "succeeded", "card", 1000, ("", ""), 0, False),
            (60 + 24 * 60, "usd", "succeeded", "card", 1000, ("", ""), 0, False),
        ]
    )
    generate_analytics(start=START, end=START + timedelta(days=1))
    Payment.objects.filter(created__date=START).update(
        status=Payment.Status.FAILED, stripe_fee=0, platform_fee=0, net=0
    )
    result = generate_analytics(start=START, end=START + timedelta(days=1))
    assert (result.updated, result.unchanged) == (1, 1)
    row = DailyRollup.objects.get(day=START)
    assert (row.succeeded_count, row.failed_count, row.success_rate) == (0, 1, 0)


@pytest.mark.django_db
def test_reversed_range_is_refused_with_its_message():
    with pytest.raises(ValueError) as exc:
        generate_analytics(start=START, end=START - timedelta(days=1))
    assert str(exc.value) == ERR_RANGE_REVERSED.format(start=START, end=START - timedelta(1))


@pytest.mark.django_db
def test_rates_have_two_fixed_places_and_null_without_denominator():
    _make([(60, "usd", "canceled", "card", 999, ("", ""), 0, False)])
    generate_analytics(start=START, end=START)
    row = DailyRollup.objects.get()
    assert row.success_rate is None  # nothing decided: no rate, not 0 %
    assert str(row.conversion_rate) == "0.00"
    assert row.average_amount is None
