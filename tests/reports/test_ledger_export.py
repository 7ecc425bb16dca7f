"""The earnings ledger's export for accounting: CSV and JSON, streamed in chunks, filtered by
instructor, currency and site-zone days (both ends included), formulas neutralised, bad
filters refused with a 400 and the reason, and only for staff who may export and read it."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from payments.models import EarningEntry
from reports import exports
from reports.export_columns import EARNING_ENTRY_COLUMNS, headers
from reports.exports import csv_rows, json_rows
from reports.ledger_export import ERR_CURRENCY, ERR_RANGE, earning_ledger_queryset
from tests.factories import InstructorFactory, PaymentFactory
from tests.reports.helpers import earning_entry as entry
from tests.reports.helpers import staff_with

pytestmark = pytest.mark.django_db
Kind = EarningEntry.Kind
EXPORT = reverse("admin:payments_instructor_ledger_export")


def export_url(**query) -> str:
    return EXPORT + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def read_json(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    return json.loads(b"".join(response.streaming_content))


@pytest.fixture
def accountant(client):
    client.force_login(
        staff_with(
            "payments.view_instructor",
            "payments.view_earningentry",
            "reports.export_payments",
            username="accountant",
        )
    )
    return client


@pytest.fixture
def ledger(settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # not UTC, so a missed conversion shows
    ada = InstructorFactory(name="Ada", email="ada@example.com")
    bob = InstructorFactory(name="=cmd|' /C calc'!A0", email="bob@example.com")
    payment = PaymentFactory(instructor=ada, stripe_payment_intent_id="pi_export1")
    # 2026-10-31 15:30 UTC is 2026-11-01 00:30 in Tokyo: a November entry.
    first = entry(
        ada,
        3710,
        when=datetime(2026, 10, 31, 15, 30, tzinfo=UTC),
        available=datetime(2026, 11, 7, 15, 30, tzinfo=UTC),
        payment=payment,
        reference="payment:pi_export1:earning",
    )
    entry(ada, -1855, Kind.REFUND, when=datetime(2026, 11, 30, 14, 59, tzinfo=UTC), payment=payment)
    entry(ada, -2000, Kind.PAYOUT, when=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # Dec 1 JST
    entry(ada, 1500, currency="jpy", when=datetime(2026, 11, 10, tzinfo=UTC))
    entry(
        bob, 999, Kind.ADJUSTMENT, when=datetime(2026, 11, 10, tzinfo=UTC), description="+1 bonus"
    )
    return {"ada": ada, "bob": bob, "first": first}


def test_csv_of_one_instructor_currency_and_month_in_the_site_zone(accountant, ledger):
    ada = ledger["ada"]
    response = accountant.get(
        export_url(
            instructor=ada.pk,
            currency="usd",
            date_from="2026-11-01",
            date_to="2026-11-30",
            format="csv",
        )
    )
    assert response["Content-Type"] == "text/csv"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="earnings-ledger-i{ada.pk}-usd-2026-11-01-to-2026-11-30.csv"'
    )
    rows = read_csv(response)
    assert list(rows[0]) == headers(EARNING_ENTRY_COLUMNS)
    assert [(r["kind"], r["amount"], r["amount_minor"]) for r in rows] == [
        ("earning", "37.10", "3710"),
        ("refund", "-18.55", "-1855"),
    ]
    first = rows[0]
    assert first["occurred_at"] == "2026-11-01 00:30:00"
    assert first["available_at"] == "2026-11-08 00:30:00"
    assert first["time_zone"] == "Asia/Tokyo"
    assert first["instructor_id"] == str(ada.pk)
    assert first["instructor_email"] == "ada@example.com"
    assert first["reference"] == "payment:pi_export1:earning"
    assert first["payment_intent"] == "pi_export1"
    assert first["payout_id"] == ""


def test_json_holds_the_same_rows_as_the_csv(accountant, ledger):
    rows_csv = read_csv(accountant.get(export_url(format="csv")))
    rows_json = read_json(accountant.get(export_url(format="json")))
    assert rows_json == rows_csv
    assert len(rows_json) == 5
    # Oldest first; amounts in major units of each row's currency.
    assert [r["amount"] for r in rows_json] == ["37.10", "1500", "9.99", "-18.55", "-20.00"]


def test_text_that_a_spreadsheet_would_run_is_neutralised(accountant, ledger):
    (row,) = read_csv(accountant.get(export_url(instructor=ledger["bob"].pk, format="csv")))
    assert row["instructor_name"] == "'=cmd|' /C calc'!A0"
    assert row["description"] == "'+1 bonus"
    assert row["amount"] == "9.99"  # a number stays a number


def test_bad_filters_answer_400_with_the_reason_and_export_nothing(accountant, ledger):
    response = accountant.get(export_url(currency="usdx", format="csv"))
    assert response.status_code == 400
    assert not isinstance(response, StreamingHttpResponse)
    body = response.content.decode().replace("&#x27;", "'")
    assert "Ensure this value has at most 3 characters" in body
    response = accountant.get(export_url(currency="xyz", format="csv"))
    assert ERR_CURRENCY.format(value="xyz") in response.content.decode().replace("&#x27;", "'")
    response = accountant.get(
        export_url(date_from="2026-12-01", date_to="2026-11-01", format="csv")
    )
    assert response.status_code == 400
    assert ERR_RANGE in response.content.decode()
    assert accountant.get(export_url(format="xlsx")).status_code == 400
    assert accountant.get(export_url(instructor="999999", format="csv")).status_code == 400
    assert accountant.get(export_url(date_from="yesterday", format="csv")).status_code == 400


def test_without_a_format_the_form_is_shown(accountant, ledger):
    response = accountant.get(EXPORT)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="ledger-export-form"' in body
    assert 'type="date"' in body


def test_the_changelist_offers_the_export_only_to_staff_who_may_export(accountant, client, ledger):
    changelist = reverse("admin:payments_instructor_changelist")
    assert EXPORT in accountant.get(changelist).content.decode()
    client.force_login(
        staff_with("payments.view_instructor", "payments.view_earningentry", username="reader")
    )
    assert EXPORT not in client.get(changelist).content.decode()


@pytest.mark.parametrize(
    "perms",
    [
        ("payments.view_instructor", "payments.view_earningentry"),
        ("payments.view_instructor", "reports.export_payments"),
    ],
)
def test_export_needs_both_the_export_and_the_ledger_permission(client, ledger, perms):
    client.force_login(staff_with(*perms, username="half"))
    assert client.get(export_url(format="csv")).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_streamed_in_chunks_of_a_bounded_size(monkeypatch, ledger):
    """Flat memory: rows leave in chunks of STREAM_CHUNK_ROWS, read through a chunked
    iterator, never as one list (the 1M-row figure is the payments export's benchmark, whose
    loop this export shares)."""
    monkeypatch.setattr(exports, "STREAM_CHUNK_ROWS", 2)
    queryset = earning_ledger_queryset()
    csv_chunks = list(csv_rows(queryset, EARNING_ENTRY_COLUMNS))
    json_chunks = list(json_rows(queryset, EARNING_ENTRY_COLUMNS))
    assert len(csv_chunks) == 1 + 3  # the header, then 2 + 2 + 1 rows
    assert len(json_chunks) == 1 + 3 + 1  # "[", three chunks, "]"
    assert len(json.loads("".join(json_chunks))) == 5


def test_an_empty_selection_is_an_empty_array_and_a_header(accountant, ledger):
    assert read_json(accountant.get(export_url(currency="eur", format="json"))) == []
    response = accountant.get(export_url(currency="eur", format="csv"))
    text = b"".join(response.streaming_content).decode()
    assert text.strip() == ",".join(headers(EARNING_ENTRY_COLUMNS))


def test_the_export_reads_in_a_constant_number_of_queries(accountant, ledger):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_export():
        with CaptureQueriesContext(connection) as queries:
            read_csv(accountant.get(export_url(format="csv")))
        return len(queries)

    before = queries_for_export()
    for day in range(1, 21):
        entry(ledger["ada"], day, when=datetime(2026, 11, day, tzinfo=UTC))
    assert queries_for_export() == before


LEDGER_LIST = reverse("admin:payments_earningentry_changelist")
LEDGER_CSV = reverse("admin:payments_earningentry_export_csv_stream")
LEDGER_JSON = reverse("admin:payments_earningentry_export_json_stream")


def test_the_ledger_list_exports_exactly_its_filtered_rows(accountant, ledger):
    """The earnings ledger's changelist: its filters and search, streamed as CSV or JSON."""
    body = accountant.get(LEDGER_LIST).content.decode()
    assert LEDGER_CSV in body and LEDGER_JSON in body
    query = f"?instructor__id__exact={ledger['ada'].pk}&currency=usd"
    rows_csv = read_csv(accountant.get(LEDGER_CSV + query))
    rows_json = read_json(accountant.get(LEDGER_JSON + query))
    assert rows_csv == rows_json
    # The changelist's order (newest first), Ada's usd entries only.
    assert [r["kind"] for r in rows_csv] == ["payout", "refund", "earning"]


def test_the_ledger_list_export_needs_both_permissions(client, ledger):
    client.force_login(
        staff_with("payments.view_earningentry", "payments.view_instructor", username="reader")
    )
    body = client.get(LEDGER_LIST).content.decode()
    assert LEDGER_CSV not in body and LEDGER_JSON not in body
    assert client.get(LEDGER_CSV).status_code == 403
    assert client.get(LEDGER_JSON).status_code == 403
