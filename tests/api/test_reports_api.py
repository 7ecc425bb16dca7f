"""The reports app's endpoints: dashboard KPIs (the admin dashboard's own cards and figures),
metrics per currency with targets (the rollups' totals), the daily rollups, receipts and
their PDF. Figures are compared with the functions the admin pages use, not recomputed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from refunds.models import RefundRequest
from reports.dashboard import dashboard_context
from reports.models import DailyRollup
from reports.receipts import credit_note_issue, receipt_issue
from reports.rollups import generate_analytics
from reports.selectors import rollup_totals
from tests.api.harness import FINANCE_VIEWERS, assert_matrix, read_matrix
from tests.factories import DisputeFactory, PaymentFactory, RefundRequestFactory
from tests.reports.helpers import pdf_text

pytestmark = pytest.mark.django_db


def _week_of_payments():
    now = timezone.now()
    PaymentFactory.create_batch(9, created=now - timedelta(days=1))
    PaymentFactory(failed=True, created=now - timedelta(days=1))
    PaymentFactory.create_batch(2, amount=12_000, currency="jpy", created=now - timedelta(days=2))
    PaymentFactory(amount=700, created=now)
    today = timezone.localdate()
    generate_analytics(start=today - timedelta(days=29), end=today)


@pytest.mark.parametrize(
    "path", ["/api/v1/dashboard/", "/api/v1/metrics/", "/api/v1/rollups/", "/api/v1/receipts/"]
)
def test_reads_matrix(api_roles, path):
    _week_of_payments()
    receipt_issue(payment=PaymentFactory())
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(path))


def test_dashboard_is_the_admin_dashboard_as_data(api_roles, settings):
    settings.REPORTS_PENDING_REFUNDS_ALERT = 2
    _week_of_payments()
    RefundRequestFactory.create_batch(2)
    dispute = DisputeFactory()
    body = api_roles["auditor"].get("/api/v1/dashboard/").json()
    admin_cards = {card.key: card for card in dashboard_context()["cards"]}
    cards = {card["key"]: card for card in body["cards"]}
    assert cards.keys() == admin_cards.keys()
    for key, card in cards.items():
        assert (card["value"], card["tone"], card["target"]) == (
            admin_cards[key].value,
            admin_cards[key].tone,
            admin_cards[key].target,
        )
    # Counts pooled over currencies, as the dashboard's card (12 captured, 1 failed).
    assert cards["success_rate"]["figures"] == {
        "rate": 92.31,
        "target": 95.0,
        "succeeded": 12,
        "failed": 1,
        "window_days": 7,
    }
    assert cards["pending_refunds"]["figures"] == {"pending": 2, "alert_at": 2}
    assert cards["disputes"]["figures"] == {
        "needing_response": 1,
        "next_due_by": dispute.evidence_due_by.isoformat().replace("+00:00", "Z"),
    }
    assert cards["pending_refunds"]["tone"] == "danger"
    assert set(body["alerts"]) >= {"success_rate", "failed_share", "pending_refunds"}
    today = {row["currency"]: row for row in body["today_by_currency"]}
    admin_today = {row["currency"]: row for row in dashboard_context()["today_rows"]}
    assert today.keys() == admin_today.keys()
    for currency, row in today.items():
        assert row["revenue"] == {
            "amount": admin_today[currency]["revenue"],
            "currency": currency,
            "display": admin_today[currency]["revenue_display"],
        }
        assert row["transactions"] == admin_today[currency]["transactions"]


def test_dashboard_queries_do_not_grow_with_the_data(api_roles):
    client = api_roles["finance"]
    _week_of_payments()
    client.get("/api/v1/dashboard/")  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/dashboard/")
    PaymentFactory.create_batch(30, created=timezone.now())
    RefundRequestFactory.create_batch(5, status=RefundRequest.Status.PROCESSED)
    with CaptureQueriesContext(connection) as many:
        client.get("/api/v1/dashboard/")
    assert len(many) == len(few)


def test_metrics_are_the_rollup_totals_per_currency_with_targets(api_roles):
    _week_of_payments()
    body = api_roles["finance"].get("/api/v1/metrics/?days=7").json()
    today = timezone.localdate()
    assert body["end"] == today.isoformat()
    assert body["start"] == (today - timedelta(days=6)).isoformat()
    assert body["targets"]["success_rate"] == 95.0
    expected = {
        totals.currency: totals
        for totals in rollup_totals(
            queryset=DailyRollup.objects.filter(day__gte=today - timedelta(days=6))
        )
    }
    currencies = {row["currency"]: row for row in body["currencies"]}
    assert currencies.keys() == expected.keys() == {"usd", "jpy"}
    usd = currencies["usd"]
    assert usd["gross"] == {
        "amount": expected["usd"].gross_amount,
        "currency": "usd",
        "display": expected["usd"].gross_display,
    }
    assert (usd["succeeded"], usd["failed"], usd["success_rate"]) == (10, 1, 90.91)
    assert usd["meets_success_target"] is False
    jpy = currencies["jpy"]
    assert jpy["gross"]["display"] == "¥24,000"
    assert jpy["meets_success_target"] is True


@pytest.mark.parametrize(
    "query",
    ["?days=0", "?days=abc", "?days=400", "?start=2026-13-01", "?start=2026-02-01&end=2026-01-01"],
)
def test_metrics_refuse_a_bad_window(api_roles, query):
    response = api_roles["finance"].get("/api/v1/metrics/" + query)
    assert response.status_code == 400
    assert response.json()["error"]["fields"]


def test_rollups_newest_first_filtered_and_paged(api_roles):
    _week_of_payments()
    client = api_roles["finance"]
    rows, url = [], "/api/v1/rollups/?currency=USD&page_size=1"
    while url:
        body = client.get(url).json()
        rows += body["results"]
        url = body["next"]
    days = [row["day"] for row in rows]
    assert days == sorted(days, reverse=True) and len(days) == len(set(days))
    assert {row["currency"] for row in rows} == {"usd"}
    assert rows[0]["gross"]["amount"] == 700
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    recent = client.get(f"/api/v1/rollups/?day_from={since}").json()["results"]
    assert {row["day"] for row in recent} <= {since, timezone.localdate().isoformat()}


def test_receipts_list_detail_and_pdf(api_roles):
    payment = PaymentFactory(amount=4200)
    receipt = receipt_issue(payment=payment)
    note = credit_note_issue(payment=payment, refund_amount=1200, stripe_refund_id="re_api1")
    client = api_roles["auditor"]
    listed = client.get("/api/v1/receipts/?kind=credit_note").json()["results"]
    assert [row["number"] for row in listed] == [note.number]
    detail = client.get(f"/api/v1/receipts/{receipt.pk}/").json()
    assert detail["amount"] == {"amount": 4200, "currency": "usd", "display": "$42.00"}
    assert detail["pdf"].endswith(f"/api/v1/receipts/{receipt.pk}/pdf/")
    by_number = client.get(f"/api/v1/receipts/?number={receipt.number[:8].lower()}").json()
    assert receipt.number in [row["number"] for row in by_number["results"]]
    pdf = client.get(f"/api/v1/receipts/{receipt.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"] == f'attachment; filename="{receipt.number}.pdf"'
    assert receipt.number in pdf_text(pdf.content)
    missing = client.get("/api/v1/receipts/999999/pdf/", HTTP_ACCEPT="application/pdf")
    assert missing.status_code == 404


def test_receipt_pdf_matrix(api_roles):
    receipt = receipt_issue(payment=PaymentFactory())
    assert_matrix(
        api_roles,
        read_matrix(FINANCE_VIEWERS),
        lambda c: c.get(f"/api/v1/receipts/{receipt.pk}/pdf/"),
    )
