"""Exports a spreadsheet can use: XLSX amounts are numbers formatted with their currency's
decimals and date-times are date-time cells; the admin export, the streamed CSV and
`--payment-report`'s CSV share one column definition, units and time zone."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from payments.models import Payment
from refunds.models import RefundRequest
from reports.export_columns import (
    ALL_COLUMN_LISTS,
    ERR_MINOR_NAME,
    ERR_MINOR_NAME_KIND,
    MINOR,
    MINOR_SUFFIX,
    MONEY,
    PAYMENT_COLUMNS,
    PAYMENT_REPORT_COLUMNS,
    REFUND_REQUEST_COLUMNS,
    TIME_ZONE_HEADER,
    Column,
    headers,
)
from reports.payment_report_files import payment_report_write
from reports.rollups import generate_analytics
from tests.factories import PaymentFactory, RefundRequestFactory
from tests.reports.helpers import staff_with

pytestmark = pytest.mark.django_db
SITE_ZONE = "Asia/Tokyo"  # not UTC, so a missed conversion shows
CREATED = datetime(2026, 5, 10, 23, 30, 5, tzinfo=UTC)  # 2026-05-11 08:30:05 in Tokyo
CSV_INDEX, JSON_INDEX, XLSX_INDEX = "0", "1", "2"
PAYMENTS = "payments_payment"
REFUND_REQUESTS = "refunds_refundrequest"


@pytest.fixture
def exporter(client, settings):
    settings.TIME_ZONE = SITE_ZONE
    client.force_login(
        staff_with(
            "payments.view_payment",
            "refunds.view_refundrequest",
            "reports.export_payments",
        )
    )
    return client


@pytest.fixture
def three_currencies():
    PaymentFactory(
        currency="usd",
        amount=1230,
        stripe_payment_intent_id="pi_usd",
        description="=HYPERLINK(1)",
        created=CREATED,
    )
    PaymentFactory(currency="jpy", amount=1500, stripe_payment_intent_id="pi_jpy", created=CREATED)
    PaymentFactory(currency="kwd", amount=1234, stripe_payment_intent_id="pi_kwd", created=CREATED)
    # A lost dispute can leave the instructor's net below zero: still a number.
    Payment.objects.filter(stripe_payment_intent_id="pi_usd").update(net=-250)


def _admin_export(client, model: str, fmt: str, params: str = ""):
    url = reverse(f"admin:{model}_export") + params
    form = client.get(url)
    assert form.status_code == 200
    data = {"format": fmt, "resource": "0"}
    data.update({name: "on" for name in form.context["form"].fields if "resource_" in name})
    response = client.post(url, data)
    assert response.status_code == 200
    return response


def _streamed(client, model: str, params: str = "") -> str:
    response = client.get(reverse(f"admin:{model}_export_csv_stream") + params)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def _sheet(response):
    sheet = load_workbook(io.BytesIO(response.content)).active
    names = [cell.value for cell in sheet[1]]
    rows = {}
    for row in sheet.iter_rows(min_row=2):
        cells = dict(zip(names, row, strict=True))
        rows[cells["stripe_payment_intent_id"].value] = cells
    return names, rows


def test_xlsx_amounts_are_numbers_with_the_currency_decimals(exporter, three_currencies):
    names, rows = _sheet(_admin_export(exporter, PAYMENTS, XLSX_INDEX))
    assert names == headers(PAYMENT_COLUMNS)
    expected = {"pi_usd": ("0.00", 12.3), "pi_jpy": ("0", 1500), "pi_kwd": ("0.000", 1.234)}
    for intent, (number_format, amount) in expected.items():
        cells = rows[intent]
        for column in PAYMENT_COLUMNS:
            if column.kind == MONEY:
                cell = cells[column.header]
                assert (cell.data_type, cell.number_format) == ("n", number_format), column
        assert cells["amount"].value == pytest.approx(amount)
        # Minor units only where the name says so, as a whole number.
        assert isinstance(cells["amount_minor"].value, int)
    assert rows["pi_usd"]["amount_minor"].value == 1230
    assert rows["pi_usd"]["net"].value == pytest.approx(-2.5)
    assert rows["pi_usd"]["net"].data_type == "n"  # a minus is no formula and no text
    # Text that looks like a formula stays text.
    description = rows["pi_usd"]["description"]
    assert (description.value, description.data_type) == ("'=HYPERLINK(1)", "s")


def test_xlsx_dates_are_datetime_cells_in_the_named_site_time_zone(exporter, three_currencies):
    _, rows = _sheet(_admin_export(exporter, PAYMENTS, XLSX_INDEX))
    cells = rows["pi_usd"]
    created = cells["created"]
    assert created.is_date
    assert created.number_format == "yyyy-mm-dd hh:mm:ss"
    assert created.value == datetime(2026, 5, 11, 8, 30, 5)
    assert cells[TIME_ZONE_HEADER].value == SITE_ZONE
    assert CREATED.astimezone(ZoneInfo(SITE_ZONE)).replace(tzinfo=None) == created.value


def test_admin_csv_and_streamed_csv_are_the_same_file(exporter, three_currencies):
    """Same columns, same units, same time zone: the two CSVs of one filtered changelist
    are identical, byte for byte."""
    PaymentFactory(failed=True, currency="usd", amount=999, stripe_payment_intent_id="pi_fail")
    admin = _admin_export(exporter, PAYMENTS, CSV_INDEX, "?currency=usd").content.decode()
    streamed = _streamed(exporter, PAYMENTS, "?currency=usd")
    assert streamed == admin
    rows = list(csv.DictReader(io.StringIO(streamed)))
    assert list(rows[0]) == headers(PAYMENT_COLUMNS)
    usd = next(row for row in rows if row["stripe_payment_intent_id"] == "pi_usd")
    assert (usd["amount"], usd["amount_minor"], usd["net"]) == ("12.30", "1230", "-2.50")
    assert (usd["created"], usd[TIME_ZONE_HEADER]) == ("2026-05-11 08:30:05", SITE_ZONE)
    assert usd["description"] == "'=HYPERLINK(1)"


def test_refund_queue_admin_csv_and_streamed_csv_are_the_same_file(exporter):
    RefundRequestFactory(amount=1250, internal_reason="")
    RefundRequest.objects.update(failure_message="+call me", created_at=CREATED)
    admin = _admin_export(exporter, REFUND_REQUESTS, CSV_INDEX).content.decode()
    streamed = _streamed(exporter, REFUND_REQUESTS)
    assert streamed == admin
    row = next(csv.DictReader(io.StringIO(streamed)))
    assert list(row) == headers(REFUND_REQUEST_COLUMNS)
    assert (row["amount"], row["amount_minor"], row["failure_message"]) == (
        "12.50",
        "1250",
        "'+call me",
    )
    assert (row["created_at"], row[TIME_ZONE_HEADER]) == ("2026-05-11 08:30:05", SITE_ZONE)


def test_refund_queue_xlsx_has_typed_cells(exporter):
    RefundRequestFactory(amount=1250)
    sheet = load_workbook(io.BytesIO(_admin_export(exporter, REFUND_REQUESTS, XLSX_INDEX).content))
    names = [cell.value for cell in sheet.active[1]]
    assert names == headers(REFUND_REQUEST_COLUMNS)
    cells = dict(zip(names, next(sheet.active.iter_rows(min_row=2)), strict=True))
    assert (cells["amount"].value, cells["amount"].number_format) == (12.5, "0.00")
    assert cells["created_at"].is_date


def test_json_export_has_the_same_columns_and_text(exporter, three_currencies):
    import json

    rows = json.loads(_admin_export(exporter, PAYMENTS, JSON_INDEX).content)
    usd = next(row for row in rows if row["stripe_payment_intent_id"] == "pi_usd")
    assert list(usd) == headers(PAYMENT_COLUMNS)
    assert (usd["amount"], usd["created"], usd[TIME_ZONE_HEADER]) == (
        "12.30",
        "2026-05-11 08:30:05",
        SITE_ZONE,
    )


def test_payment_report_csv_uses_the_same_units_and_time_zone(exporter, three_currencies):
    """--payment-report's CSV (one row per currency) follows the same rules: money in major
    units beside `currency`, minor units only in *_minor columns, the zone named."""
    day = CREATED.astimezone(ZoneInfo(SITE_ZONE)).date()
    generate_analytics(start=day - timedelta(days=1), end=day + timedelta(days=1))
    text = payment_report_write(period="daily", fmt="csv", end=day)["csv"]
    rows = {row["currency"]: row for row in csv.DictReader(io.StringIO(text))}
    assert list(rows["usd"]) == headers(PAYMENT_REPORT_COLUMNS)
    assert set(rows) == {"usd", "jpy", "kwd"}
    assert (rows["usd"]["total_revenue"], rows["usd"]["total_revenue_minor"]) == ("12.30", "1230")
    assert (rows["usd"]["net"], rows["usd"]["net_minor"]) == ("-2.50", "-250")
    assert rows["jpy"]["total_revenue"] == "1500"
    assert rows["kwd"]["total_revenue"] == "1.234"
    assert (rows["usd"]["start"], rows["usd"]["end"]) == (day.isoformat(), day.isoformat())
    # The same time zone column, with the same value, as the admin and streamed exports.
    streamed = next(csv.DictReader(io.StringIO(_streamed(exporter, PAYMENTS))))
    assert rows["usd"][TIME_ZONE_HEADER] == streamed[TIME_ZONE_HEADER] == SITE_ZONE


def test_every_export_names_its_units_the_same_way():
    for columns in ALL_COLUMN_LISTS:
        names = headers(columns)
        assert len(names) == len(set(names))
        assert TIME_ZONE_HEADER in names and "currency" in names
        for column in columns:
            assert (column.kind == MINOR) == column.header.endswith(MINOR_SUFFIX)
    # The payment and refund-queue exports agree on the columns they share.
    shared = set(headers(PAYMENT_COLUMNS)) & set(headers(REFUND_REQUEST_COLUMNS))
    assert {"currency", "amount", "amount_minor", TIME_ZONE_HEADER} <= shared


def test_a_minor_unit_column_must_say_so():
    with pytest.raises(ValueError) as exc:
        Column("amount_cents", "amount", MINOR)
    assert str(exc.value) == ERR_MINOR_NAME.format(header="amount_cents")
    with pytest.raises(ValueError) as exc:
        Column("amount_minor", "amount", MONEY)
    assert str(exc.value) == ERR_MINOR_NAME_KIND.format(header="amount_minor")


def test_an_unknown_currency_row_is_exported_unscaled(exporter):
    PaymentFactory(stripe_payment_intent_id="pi_bad", amount=20300)
    Payment.objects.update(currency="xyz")
    _, rows = _sheet(_admin_export(exporter, PAYMENTS, XLSX_INDEX))
    cell = rows["pi_bad"]["amount"]
    assert (cell.value, cell.number_format) == (20300, "0")
    assert Decimal(
        next(csv.DictReader(io.StringIO(_streamed(exporter, PAYMENTS))))["amount"]
    ) == Decimal(20300)


def test_xlsx_drops_control_characters_instead_of_failing(exporter):
    # XLSX cannot hold most control characters; a Stripe text may carry one.
    PaymentFactory(stripe_payment_intent_id="pi_ctl", failure_message="card\x01 declined\x1f")
    _, rows = _sheet(_admin_export(exporter, PAYMENTS, XLSX_INDEX))
    assert rows["pi_ctl"]["failure_message"].value == "card declined"
