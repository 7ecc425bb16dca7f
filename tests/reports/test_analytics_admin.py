"""The analytics changelist over the rollups."""

from datetime import date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reports.admin import WARN_BAD_DATE
from reports.models import DailyRollup
from reports.rollups import generate_analytics
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:reports_dailyrollup_changelist")
DAY = date(2026, 4, 1)


def at(day, hour=12):
    return timezone.make_aware(datetime.combine(day, time(hour)))


def _days(n, currencies=("usd", "eur")):
    for i in range(n):
        for currency in currencies:
            PaymentFactory(created=at(DAY + timedelta(days=i)), currency=currency, amount=1000)
    generate_analytics(start=DAY, end=DAY + timedelta(days=n))


def test_totals_are_per_currency_for_the_filtered_rows(admin_client):
    _days(5)
    PaymentFactory(failed=True, created=at(DAY))
    generate_analytics(start=DAY, end=DAY)
    response = admin_client.get(
        CHANGELIST, {"day_from": DAY.isoformat(), "day_to": (DAY + timedelta(days=2)).isoformat()}
    )
    totals = {t.currency: t for t in response.context["analytics"]["totals"]}
    assert set(totals) == {"eur", "usd"}
    assert (totals["usd"].gross_amount, totals["usd"].attempted_count) == (3000, 4)
    assert str(totals["usd"].success_rate) == "75.00"
    assert totals["eur"].gross_display == "€30.00"
    body = response.content.decode()
    assert 'data-testid="total-usd"' in body and 'data-testid="revenue-chart-eur"' in body


def test_currency_filter(admin_client):
    _days(3)
    response = admin_client.get(CHANGELIST, {"currency": "eur"})
    assert {r.currency for r in response.context["cl"].result_list} == {"eur"}
    assert [t.currency for t in response.context["analytics"]["totals"]] == ["eur"]


def test_query_count_is_the_same_for_10_and_100_rows(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(CHANGELIST, {"all": ""}).status_code == 200
        return len(context)

    _days(5)
    assert DailyRollup.objects.count() == 10
    few = queries()
    _days(50)
    assert DailyRollup.objects.count() == 100
    assert queries() == few


def test_bad_dates_never_give_a_500(admin_client):
    _days(2)
    response = admin_client.get(CHANGELIST, {"day_from": "yesterday", "day_to": "2026-13-45"})
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert WARN_BAD_DATE.format(value="yesterday") in messages


def test_rollups_are_read_only(admin_client):
    _days(1)
    row = DailyRollup.objects.first()
    assert admin_client.get(reverse("admin:reports_dailyrollup_add")).status_code == 403
    change = reverse("admin:reports_dailyrollup_change", args=[row.pk])
    assert admin_client.post(change, {"attempted_count": 999}).status_code == 403
    row.refresh_from_db()
    assert row.attempted_count == 1


def test_median_refund_hours_come_from_processed_refund_requests():
    processed = at(DAY, 18)
    for hours in (1, 5, 12):
        request = RefundRequestFactory()
        type(request).objects.filter(pk=request.pk).update(
            status="processed",
            created_at=processed - timedelta(hours=hours),
            processed_at=processed,
        )
    RefundRequestFactory()  # pending: not counted
    generate_analytics(start=DAY, end=DAY)
    row = DailyRollup.objects.get(day=DAY, currency="usd")
    assert (row.refund_requests_processed, str(row.median_refund_hours)) == (3, "5.00")
