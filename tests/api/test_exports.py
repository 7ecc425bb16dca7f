"""/api/v1/exports/{transactions,refunds}.{csv,json}: the admin's streamed export code, its
permission (reports.export_payments) and the list endpoints' filters."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.query import QuerySet

from payments.models import Payment
from refunds.models import RefundRequest
from reports.export_columns import PAYMENT_COLUMNS, REFUND_REQUEST_COLUMNS, headers
from reports.exports import ExportJSON, PaymentResource, RefundRequestResource, csv_rows
from tests.api.harness import assert_matrix, read_matrix
from tests.factories import CustomerFactory, PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db

EXPORTERS = {"superuser", "finance", "senior", "read_only"}
URLS = [
    "/api/v1/exports/transactions.csv",
    "/api/v1/exports/transactions.json",
    "/api/v1/exports/refunds.csv",
    "/api/v1/exports/refunds.json",
]
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def body(response) -> str:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def csv_dicts(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def exporter(api_roles):
    return api_roles["finance"]


@pytest.mark.parametrize("url", URLS)
def test_permission_matrix_is_the_admin_exports(api_roles, url):
    """Auditors read the lists but may not export, as in the admin."""
    PaymentFactory()
    assert_matrix(api_roles, read_matrix(EXPORTERS), lambda client: client.get(url))


def test_transactions_csv_is_the_admins_streamed_csv_with_the_lists_filters(exporter):
    PaymentFactory(created=T0, currency="usd", description="=HYPERLINK()")
    PaymentFactory(created=T0 - timedelta(hours=1), currency="eur")
    PaymentFactory(created=T0 - timedelta(hours=2), currency="usd", failed=True)
    response = exporter.get(URLS[0], {"currency": "usd"})
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="payments-')
    text = body(response)
    usd = Payment.objects.filter(currency="usd").order_by("-created", "-id")
    expected = "".join(csv_rows(usd, PAYMENT_COLUMNS))
    assert text == expected
    rows = csv_dicts(text)
    assert [row["currency"] for row in rows] == ["usd", "usd"]
    assert rows[0]["description"] == "'=HYPERLINK()"  # neutralised, as the admin's
    assert rows[0]["amount"] == "50.00" and rows[0]["amount_minor"] == "5000"
    failed_only = csv_dicts(body(exporter.get(URLS[0], {"status": "failed"})))
    assert [row["status"] for row in failed_only] == ["failed"]


def test_transactions_json_holds_the_admins_json_export_cells(exporter):
    PaymentFactory(created=T0, amount=1500, currency="jpy")
    PaymentFactory(created=T0 - timedelta(hours=1), failed=True)
    response = exporter.get(URLS[1])
    assert response["Content-Type"] == "application/json"
    rows = json.loads(body(response))
    queryset = Payment.objects.order_by("-created", "-id")
    admin = json.loads(ExportJSON().export_data(PaymentResource().export(queryset=queryset)))
    assert rows == admin
    assert list(rows[0]) == headers(PAYMENT_COLUMNS)
    assert rows[0]["amount"] == "1500" and rows[0]["currency"] == "jpy"
    assert rows[1]["succeeded_at"] == ""


def test_an_empty_export_is_a_header_or_an_empty_array(exporter):
    assert body(exporter.get(URLS[0])).strip() == ",".join(headers(PAYMENT_COLUMNS))
    assert json.loads(body(exporter.get(URLS[1]))) == []


def test_refunds_export_with_the_queues_filters_and_search(exporter):
    pending = RefundRequestFactory(
        payment=PaymentFactory(customer=CustomerFactory(email="lin@example.com"))
    )
    RefundRequestFactory(status=RefundRequest.Status.REJECTED, rejection_reason="duplicate")
    rows = csv_dicts(body(exporter.get(URLS[2], {"status": "pending"})))
    assert [int(row["id"]) for row in rows] == [pending.pk]
    rows = json.loads(body(exporter.get(URLS[3], {"q": "lin@"})))
    assert [int(row["id"]) for row in rows] == [pending.pk]
    admin = json.loads(
        ExportJSON().export_data(
            RefundRequestResource().export(queryset=RefundRequest.objects.filter(pk=pending.pk))
        )
    )
    assert rows == admin
    assert list(rows[0]) == headers(REFUND_REQUEST_COLUMNS)


@pytest.mark.parametrize("url", URLS)
def test_a_bad_filter_is_a_json_400_whatever_the_file_type(exporter, url):
    response = exporter.get(url, {"currency": "dollars"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(response.json()["error"]["fields"]) == ["currency"]


def test_exports_read_in_chunks_with_a_server_side_iterator(exporter, monkeypatch):
    """Flat memory: rows come from QuerySet.iterator (a server-side cursor on PostgreSQL),
    never a list of every row; the measured figures are bench_reports.py's."""
    calls = []
    original = QuerySet.iterator

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("chunk_size"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    PaymentFactory.create_batch(3)
    for url in URLS[:2]:
        body(exporter.get(url))
    assert calls == [2000, 2000]


def test_the_refunds_export_takes_every_filter_of_the_refund_requests_list(exporter):
    """One filter class for both (refunds.api.RefundRequestFilter): what the list finds, the
    export writes, the list's own filters (priority, reason, payment) included."""
    old = RefundRequestFactory(amount=900)
    RefundRequest.objects.filter(pk=old.pk).update(
        created_at=datetime.now(UTC) - timedelta(days=10)
    )
    young = RefundRequestFactory(amount=800)
    rejected = RefundRequestFactory(status=RefundRequest.Status.REJECTED, amount=700)
    for query, expected in (
        ({"status": ["pending", "rejected"]}, [rejected, young, old]),
        ({"priority": "urgent"}, [old]),
        ({"payment": young.payment_id}, [young]),
        ({"amount_max": "7.50"}, [rejected]),
    ):
        listed = exporter.get("/api/v1/refund-requests/", query).json()["results"]
        exported = csv_dicts(body(exporter.get(URLS[2], query)))
        assert [int(row["id"]) for row in exported] == [row["id"] for row in listed]
        assert [row["id"] for row in listed] == [row.pk for row in expected], query
