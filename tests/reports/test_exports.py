"""Exports: permission, filters kept, formulas neutralised, streaming CSV, XLSX, JSON report."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from backoffice.spreadsheet import FORMULA_PREFIXES, neutralise
from reports.exports import ERR_BAD_FILTERS, PaymentResource, StripeRefundResource
from tests.factories import CustomerFactory, PaymentFactory, RefundFactory
from tests.reports.helpers import staff_with

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:payments_payment_changelist")
EXPORT = reverse("admin:payments_payment_export")
STREAM = reverse("admin:payments_payment_export_csv_stream")
EVIL = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def exporter(client):
    client.force_login(staff_with("payments.view_payment", "reports.export_payments"))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(staff_with("payments.view_payment", username="viewer"))
    return client


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_every_formula_prefix_is_neutralised(prefix):
    assert neutralise(f"{prefix}1+1") == f"'{prefix}1+1"


@pytest.mark.parametrize("value", ["plain", "", None, 12, "a=b", "12.50"])
def test_other_values_pass_untouched(value):
    assert neutralise(value) == value


def test_resource_neutralises_formula_cells_and_writes_major_units():
    customer = CustomerFactory(name="@SUM(A1:A9)", email="x@example.com")
    PaymentFactory(customer=customer, description=EVIL, amount=1234, currency="usd")
    PaymentFactory(description="\tTabbed", amount=1500, currency="jpy")
    rows = {row["currency"]: row for row in PaymentResource().export().dict}
    usd = rows["usd"]
    assert usd["description"] == "'" + EVIL
    assert usd["customer_name"] == "'@SUM(A1:A9)"
    # Numbers, not text: a spreadsheet can sum them, and a minus is no formula.
    assert usd["amount"] == Decimal("12.34")
    jpy = rows["jpy"]
    assert jpy["amount"] == Decimal("1500")
    assert jpy["description"] == "'\tTabbed"


def test_refund_resource_exports_stripe_refunds():
    RefundFactory(stripe_id="re_x", amount=250)
    row = StripeRefundResource().export().dict[0]
    assert (row["stripe_id"], row["amount"], row["payment_intent"][:3]) == (
        "re_x",
        Decimal("2.50"),
        "pi_",
    )


def test_staff_without_the_export_permission_see_no_button_and_get_403(viewer):
    PaymentFactory()
    body = viewer.get(CHANGELIST).content.decode()
    assert EXPORT not in body
    assert STREAM not in body
    assert viewer.get(EXPORT).status_code == 403
    assert viewer.post(EXPORT, {"format": "0", "resource": "0"}).status_code == 403
    assert viewer.get(STREAM).status_code == 403


def test_staff_with_the_permission_see_both_export_buttons_with_the_filters(exporter):
    PaymentFactory()
    body = exporter.get(CHANGELIST, {"status": "failed"}).content.decode()
    assert f"{EXPORT}?status=failed" in body
    assert STREAM in body  # its link takes window.location.search when clicked


def _export(client, fmt_index, params=""):
    form = client.get(EXPORT + params)
    assert form.status_code == 200
    fields = [
        name
        for name, _ in form.context["form"].fields.items()
        if name.startswith("paymentresource_")
    ]
    data = {"format": str(fmt_index), "resource": "0", **{name: "on" for name in fields}}
    return client.post(EXPORT + params, data)


def test_csv_export_keeps_the_changelist_filters_and_neutralises(exporter):
    PaymentFactory(description=EVIL)
    PaymentFactory(failed=True, description="=1+1", stripe_payment_intent_id="pi_failed1")
    response = _export(exporter, 0, "?status=failed")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["stripe_payment_intent_id"] for r in rows] == ["pi_failed1"]
    assert rows[0]["description"] == "'=1+1"


def test_json_and_xlsx_exports(exporter):
    PaymentFactory(description=EVIL, amount=999)
    as_json = json.loads(_export(exporter, 1).content)
    assert as_json[0]["description"] == "'" + EVIL
    assert as_json[0]["amount"] == "9.99"
    xlsx = _export(exporter, 2)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("description") + 1)
    assert cell.value == "'" + EVIL
    assert cell.data_type == "s"  # text, not a formula


def test_streamed_csv_keeps_filters_neutralises_and_streams(exporter):
    PaymentFactory(description=EVIL, stripe_payment_intent_id="pi_ok", amount=5000)
    PaymentFactory(failed=True, stripe_payment_intent_id="pi_bad")
    PaymentFactory(currency="jpy", amount=1500, stripe_payment_intent_id="pi_yen")
    response = exporter.get(STREAM, {"status": "succeeded"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="payments-')
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["stripe_payment_intent_id"] for r in rows} == {"pi_ok", "pi_yen"}
    ok = next(r for r in rows if r["stripe_payment_intent_id"] == "pi_ok")
    assert ok["description"] == "'" + EVIL
    assert ok["amount"] == "50.00"
    assert next(r for r in rows if r["currency"] == "jpy")["amount"] == "1500"


def test_streamed_csv_is_read_only_and_bad_filters_never_500(exporter):
    PaymentFactory()
    assert exporter.get(STREAM, {"created_from": "not-a-date"}).status_code == 200
    bad = exporter.get(STREAM, {"no_such_field__gt": "1"})
    assert (bad.status_code, bad.content.decode()) == (400, ERR_BAD_FILTERS)


def test_json_report_action_on_selected_payments(exporter):
    chosen = [
        PaymentFactory(amount=1000),
        PaymentFactory(amount=3000),
        PaymentFactory(failed=True, decline_code="expired_card"),
    ]
    PaymentFactory(amount=99999)  # not selected
    data = {"action": "json_report", "index": "0", "_selected_action": [p.pk for p in chosen]}
    response = exporter.post(CHANGELIST, data)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    report = json.loads(response.content)
    usd = report["currencies"]["usd"]
    assert (usd["total_transactions"], usd["total_revenue"]) == (3, 4000)
    assert usd["success_rate"] == 66.67
    assert usd["avg_transaction_amount"] == 2000
    assert usd["failure_reasons"] == {"expired_card": 100.0}


def test_json_report_action_needs_the_export_permission(client):
    client.force_login(staff_with("payments.view_payment", username="viewer"))
    payment = PaymentFactory()
    response = client.post(
        CHANGELIST, {"action": "json_report", "index": "0", "_selected_action": [payment.pk]}
    )
    # Without the permission the action is not offered: Django answers with the changelist
    # and no report leaves.
    assert response.status_code == 200
    assert "Content-Disposition" not in response
    assert "json_report" not in response.content.decode()


def test_refund_request_resource_and_stream_neutralise_and_use_major_units():
    from django.db.models import QuerySet

    from refunds.models import RefundRequest
    from reports.export_columns import REFUND_REQUEST_COLUMNS
    from reports.exports import RefundRequestResource, csv_rows
    from tests.factories import RefundRequestFactory

    RefundRequestFactory(amount=1250, internal_reason="", customer_note="x")
    RefundRequest.objects.update(failure_message="+call me")
    row = RefundRequestResource().export().dict[0]
    assert (row["amount"], row["failure_message"]) == (Decimal("12.50"), "'+call me")
    assert row["payment_intent"].startswith("pi_")
    queryset: QuerySet = RefundRequest.objects.all()
    text = "".join(csv_rows(queryset, REFUND_REQUEST_COLUMNS))
    record = next(csv.DictReader(io.StringIO(text)))
    assert (record["amount"], record["failure_message"]) == ("12.50", "'+call me")
    assert record["requested_by"].startswith("staff")


def test_refund_queue_exports_need_the_permission_and_keep_filters(client):
    from refunds.models import RefundRequest
    from tests.factories import RefundRequestFactory

    RefundRequestFactory(amount=700)
    rejected = RefundRequestFactory(amount=900)
    RefundRequest.objects.filter(pk=rejected.pk).update(status="rejected")
    export = reverse("admin:refunds_refundrequest_export")
    stream = reverse("admin:refunds_refundrequest_export_csv_stream")

    client.force_login(staff_with("refunds.view_refundrequest", username="viewer"))
    assert client.get(export).status_code == 403
    assert client.get(stream).status_code == 403

    client.force_login(
        staff_with("refunds.view_refundrequest", "reports.export_payments", username="clerk")
    )
    response = client.get(stream, {"status__exact": "rejected"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["status"], r["amount"]) for r in rows] == [("rejected", "9.00")]
