"""The dashboard: every card, its alert state, and a fixed number of queries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.models import FraudAlert, StudentBalance
from refunds.models import RefundRequest
from reports.dashboard import dashboard_context
from reports.rollups import generate_analytics
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    PaymentFactory,
    RefundRequestFactory,
)
from tests.reports.helpers import staff_with

pytestmark = pytest.mark.django_db
INDEX = reverse("admin:index")


def cards(context=None) -> dict:
    return {card.key: card for card in (context or dashboard_context())["cards"]}


def _refresh():
    today = timezone.localdate()
    generate_analytics(start=today - timedelta(days=29), end=today)


def test_today_shows_revenue_and_transactions_per_currency_never_summed():
    PaymentFactory.create_batch(2, amount=1000, created=timezone.now())
    PaymentFactory(amount=500, currency="eur", created=timezone.now())
    PaymentFactory(failed=True, created=timezone.now())
    PaymentFactory(amount=99999, created=timezone.now() - timedelta(days=2))
    today = {row["currency"]: row for row in dashboard_context()["today_rows"]}
    assert (today["usd"]["revenue"], today["usd"]["transactions"]) == (2000, 3)
    assert today["usd"]["revenue_display"] == "$20.00"
    assert (today["eur"]["revenue"], today["eur"]["transactions"]) == (500, 1)


def test_success_rate_below_target_and_failed_share_above_alert_are_danger():
    now = timezone.now()
    PaymentFactory.create_batch(9, created=now - timedelta(days=1))
    PaymentFactory(failed=True, created=now - timedelta(days=1))
    _refresh()
    state = cards()
    assert (state["success_rate"].value, state["success_rate"].tone) == ("90.00 %", "danger")
    assert (state["failed_share"].value, state["failed_share"].tone) == ("10.00 %", "danger")


def test_healthy_rates_are_success():
    PaymentFactory.create_batch(20, created=timezone.now() - timedelta(days=1))
    _refresh()
    state = cards()
    assert (state["success_rate"].tone, state["failed_share"].tone) == ("success", "success")


def test_pending_refunds_alert_at_ten_and_median_refund_time_against_24h():
    RefundRequestFactory.create_batch(9)
    assert cards()["pending_refunds"].tone == "warning"
    RefundRequestFactory()
    assert (cards()["pending_refunds"].value, cards()["pending_refunds"].tone) == ("10", "danger")

    now = timezone.now()
    for hours in (2, 30, 40):
        request = RefundRequestFactory()
        RefundRequest.objects.filter(pk=request.pk).update(
            status="processed", created_at=now - timedelta(hours=hours), processed_at=now
        )
    card = cards()["refund_time"]
    assert (card.value, card.tone) == ("30.0 h", "danger")


def test_disputes_needing_a_response_negative_balances_and_webhooks():
    DisputeFactory(evidence_due_by=timezone.now() + timedelta(days=1))
    DisputeFactory(status="under_review")
    StudentBalance.objects.create(customer=CustomerFactory(), minutes=-90)
    StudentBalance.objects.create(customer=CustomerFactory(), minutes=120)
    state = cards()
    assert (state["disputes"].value, state["disputes"].tone) == ("1", "danger")
    assert (state["negative_balances"].value, state["negative_balances"].tone) == ("1", "warning")
    assert state["webhooks"].tone == "success"
    assert (state["fraud"].value, state["fraud"].tone) == ("0", "success")
    FraudAlert.objects.create(
        payment=PaymentFactory(),
        source=FraudAlert.Source.EARLY_FRAUD_WARNING,
        created=timezone.now(),
    )
    assert (cards()["fraud"].value, cards()["fraud"].tone) == ("1", "danger")


def test_query_count_does_not_grow_with_data(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(INDEX).status_code == 200
        return len(context)

    PaymentFactory(created=timezone.now())
    _refresh()
    few = queries()
    now = timezone.now()
    for days in range(25):
        PaymentFactory.create_batch(2, created=now - timedelta(days=days))
        PaymentFactory(currency="eur", created=now - timedelta(days=days))
    PaymentFactory.create_batch(5, failed=True, created=now)
    DisputeFactory.create_batch(3)
    RefundRequestFactory.create_batch(4)
    _refresh()
    assert queries() == few


def test_dashboard_page_shows_every_card_with_colour_and_icon(admin_client):
    PaymentFactory(created=timezone.now(), amount=4200)
    PaymentFactory(failed=True, created=timezone.now() - timedelta(days=1))
    _refresh()
    body = admin_client.get(INDEX).content.decode()
    for key in (
        "success_rate",
        "failed_share",
        "pending_refunds",
        "refund_time",
        "disputes",
        "webhooks",
        "negative_balances",
        "sync",
    ):
        assert f'data-testid="card-{key}"' in body
    assert 'class="kpi kpi--danger"' in body
    assert "error</span>" in body  # the danger icon
    assert "$42.00" in body
    assert 'data-testid="revenue-chart-usd"' in body


def test_staff_without_the_payments_permission_get_no_figures(client):
    PaymentFactory(created=timezone.now(), amount=4200)
    client.force_login(staff_with("reports.view_dailyrollup"))
    response = client.get(INDEX)
    assert response.status_code == 200
    assert "dashboard" not in response.context
    assert "$42.00" not in response.content.decode()


def test_every_card_link_opens_its_filtered_list(admin_client):
    _refresh()
    for card in dashboard_context()["cards"]:
        if card.href:
            response = admin_client.get(card.href)
            assert response.status_code == 200, card.href
            assert "?e=" not in response.get("Location", ""), card.href
