"""Exports of payments and refunds: django-import-export (CSV, JSON, XLSX) for everyday sizes
and a streaming CSV for any size. Both keep the changelist's filters, both need the export
permission, both neutralise spreadsheet formulas. Both take their columns, units and time
zone from reports/export_columns.py (so does `--payment-report`'s CSV).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from operator import itemgetter

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from import_export import fields, resources
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX
from unfold.contrib.import_export.forms import SelectableFieldsExportForm
from unfold.decorators import action

from backoffice.spreadsheet import FORMULA_PREFIXES, neutralise
from payments.models import Payment, Refund
from payments.money import decimal_places, is_known_currency
from refunds.models import RefundRequest

from .export_columns import (
    CURRENCY_HEADER,
    DATE,
    DATETIME,
    KIND_BY_HEADER,
    MONEY,
    PAYMENT_COLUMNS,
    REFUND_REQUEST_COLUMNS,
    STRIPE_REFUND_COLUMNS,
    TEXT,
    TIME_ZONE,
    XLSX_DATE_FORMAT,
    XLSX_DATETIME_FORMAT,
    Column,
    datetime_text,
    headers,
    major,
    money_number_format,
    site_datetime,
    site_time_zone_name,
    text_cell,
)

# Configured here rather than with IMPORT_EXPORT_EXPORT_PERMISSION_CODE: that setting asks for
# `<app>.export_<model>` on every exporting model, which the models of other apps do not define.
EXPORT_PERMISSION = "reports.export_payments"
STREAM_CHUNK_ROWS = 2000
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
ERR_BAD_FILTERS = "The changelist filters in this link are not valid."


def has_export_permission(user) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(EXPORT_PERMISSION))


class _MinorUnits:
    """Minor units -> major-unit text ("1234" usd -> "12.34") without a Decimal per row: the
    streamed CSV's formatter per currency. It writes what str() of export_columns.major()
    writes, which the admin's CSV holds (tests compare the two files)."""

    def __init__(self) -> None:
        self._formatters: dict = {}

    def formatter(self, currency: str):
        """A one-argument formatter for `currency` (cached): the streamed export's hot path."""
        cached = self._formatters.get(currency)
        if cached is None:
            # A currency we do not know (a bad stored row): its minor units, unscaled.
            places = decimal_places(currency) if is_known_currency(currency) else 0
            divisor = 10**places

            def cached(amount, places=places, divisor=divisor):
                if amount is None:
                    return ""
                if not places:
                    return str(amount)
                if amount < 0:
                    whole, part = divmod(-amount, divisor)
                    return f"-{whole}.{part:0{places}d}"
                whole, part = divmod(amount, divisor)
                return f"{whole}.{part:0{places}d}"

            self._formatters[currency] = cached
        return cached


major_units = _MinorUnits()


class SafeResource(resources.ModelResource):
    """ModelResource whose every exported cell is neutralised."""

    def export_resource(self, instance, selected_fields=None, **kwargs):
        row = super().export_resource(instance, selected_fields=selected_fields, **kwargs)
        return [neutralise(value) for value in row]


class ColumnField(fields.Field):
    """An import-export field made from an export_columns.Column. It exports the NATIVE value
    (Decimal, int, aware datetime in the site zone) for every format: our formats below turn
    it into text (CSV, JSON) or a typed cell (XLSX). import-export's own widgets would render
    text unless told `force_native_type`, which it sets only for its own binary formats."""

    def __init__(self, column: Column) -> None:
        super().__init__(attribute=column.path or None, column_name=column.header, readonly=True)
        self.column = column

    def export(self, instance, **kwargs):
        kind = self.column.kind
        if kind == TIME_ZONE:
            return site_time_zone_name()
        value = self.get_value(instance)
        if kind == MONEY:
            return major(value, instance.currency)
        if kind == DATETIME:
            return site_datetime(value)
        if kind == TEXT:
            return "" if value is None else str(value)
        return value


def column_resource(name: str, model, columns: list[Column], *, related=(), doc=""):
    """A ModelResource class whose fields are `columns`, in order (the streamed CSV's too)."""
    names = headers(columns)
    meta = type("Meta", (), {"model": model, "fields": names, "export_order": names})
    attrs = {column.header: ColumnField(column) for column in columns}
    attrs.update(
        Meta=meta,
        __doc__=doc,
        __module__=__name__,
        get_queryset=lambda self: model.objects.select_related(*related),
    )
    return type(name, (SafeResource,), attrs)


PaymentResource = column_resource(
    "PaymentResource",
    Payment,
    PAYMENT_COLUMNS,
    related=("customer",),
    doc="One row per payment; amounts in major units of `currency`, never converted.",
)
StripeRefundResource = column_resource(
    "StripeRefundResource",
    Refund,
    STRIPE_REFUND_COLUMNS,
    related=("payment",),
    doc="Refunds as mirrored from Stripe (payments.Refund).",
)
RefundRequestResource = column_resource(
    "RefundRequestResource",
    RefundRequest,
    REFUND_REQUEST_COLUMNS,
    related=("payment", "requested_by"),
    doc="Refund requests (the refund queue): who asked, how much, how far it got.",
)


# --- Formats: the dataset holds native values; each format renders them -------------------


def _text_rows(dataset) -> list[list[str]]:
    return [[text_cell(value) for value in row] for row in dataset]


class ExportCSV(CSV):
    """CSV with every cell as export_columns.text_cell renders it, as the streamed CSV."""

    def export_data(self, dataset, **kwargs):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(dataset.headers)
        writer.writerows(_text_rows(dataset))
        return buffer.getvalue()


class ExportJSON(JSON):
    """JSON objects of text cells (amounts as exact decimal text, "12.30")."""

    def export_data(self, dataset, **kwargs):
        names = dataset.headers
        return json.dumps([dict(zip(names, row, strict=True)) for row in _text_rows(dataset)])


class ExportXLSX(XLSX):
    """XLSX a spreadsheet can sum: amounts are numbers formatted with their row currency's
    decimals (0.00 usd, 0 jpy, 0.000 kwd), date-times are date-time cells in the site time
    zone (named in the time_zone column). tablib's writer gives every cell "General" and
    cannot take a per-row format, hence this writer (openpyxl, write-only mode)."""

    def export_data(self, dataset, **kwargs):
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font

        names = list(dataset.headers)
        kinds = [KIND_BY_HEADER.get(name, TEXT) for name in names]
        currency_at = names.index(CURRENCY_HEADER) if CURRENCY_HEADER in names else None
        book = Workbook(write_only=True)
        sheet = book.create_sheet(safe_sheet_title(dataset.title or "Export"))
        sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        header = []
        for name in names:
            cell = WriteOnlyCell(sheet, value=name)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in dataset:
            money_format = money_number_format(row[currency_at] if currency_at is not None else "")
            cells = []
            for value, kind in zip(row, kinds, strict=True):
                if isinstance(value, datetime):
                    # Excel has no time zone: the site zone's wall time, zone in its column.
                    cell = WriteOnlyCell(sheet, value=value.replace(tzinfo=None))
                    cell.number_format = XLSX_DATETIME_FORMAT
                elif isinstance(value, date):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = XLSX_DATE_FORMAT
                elif isinstance(value, str):
                    # Control characters are illegal in XLSX; a Stripe text may hold some.
                    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value) or None)
                else:
                    cell = WriteOnlyCell(sheet, value=value)
                    if kind == MONEY and value is not None:
                        cell.number_format = money_format
                cells.append(cell)
            sheet.append(cells)
        stream = io.BytesIO()
        book.save(stream)
        return stream.getvalue()


def safe_sheet_title(title: str) -> str:
    return "".join("-" if char in "\\*?:/[]" else char for char in title)[:31]


# --- Streaming CSV: values_list + iterator, flat memory whatever the size -------------------


def csv_rows(queryset, columns: list[Column]) -> Iterator[str]:
    """CSV text in chunks of STREAM_CHUNK_ROWS rows, flat memory whatever the size (see
    _row_chunks). It writes what the admin's CSV (ExportCSV) writes for the same rows."""
    header = io.StringIO()
    csv.writer(header).writerow(headers(columns))
    yield header.getvalue()
    for rows in _row_chunks(queryset, columns):
        yield _csv_chunk(rows)


def json_rows(queryset, columns: list[Column]) -> Iterator[str]:
    """A JSON array of objects, one per row, streamed in chunks like csv_rows: the same cells
    as the admin's JSON export (ExportJSON: every value as text, amounts as exact decimal
    text "12.30", "" for none)."""
    names = headers(columns)
    encode = json.JSONEncoder(ensure_ascii=False).encode
    first = True
    yield "["
    for rows in _row_chunks(queryset, columns):
        parts = []
        for values in rows:
            cells = ["" if value is None else str(value) for value in values]
            parts.append(encode(dict(zip(names, cells, strict=True))))
        yield ("" if first else ",") + ",".join(parts)
        first = False
    yield "]"


def _row_chunks(queryset, columns: list[Column]) -> Iterator[list[list]]:
    """Lists of up to STREAM_CHUNK_ROWS rows of cells (text, major-unit amounts as text,
    datetimes as text in the site zone; None where empty). Reads with a server-side cursor
    (PostgreSQL) in chunks, so memory does not grow with the number of rows. The per-row
    work is specialised by column kind up front: this loop is the exports' hot path."""
    select: list[str] = []
    for column in columns:
        if column.path and column.path not in select:
            select.append(column.path)
    if CURRENCY_HEADER not in select and any(c.kind == MONEY for c in columns):
        select.append(CURRENCY_HEADER)
    # The time_zone column reads a constant placed after the selected values.
    constant_at = len(select)
    pick = itemgetter(*[select.index(c.path) if c.path else constant_at for c in columns])
    kinds = [column.kind for column in columns]
    text_at = [i for i, kind in enumerate(kinds) if kind == TEXT]
    money_at = [i for i, kind in enumerate(kinds) if kind == MONEY]
    time_at = [i for i, kind in enumerate(kinds) if kind in (DATETIME, DATE)]
    currency_at = select.index(CURRENCY_HEADER) if money_at else None
    prefixes = frozenset(FORMULA_PREFIXES)
    # The databases hand back aware datetimes in UTC (Django's connection time zone): with a
    # UTC site zone there is nothing to convert, which saves a third of the date-time work.
    zone = None if site_time_zone_name() in UTC_NAMES else timezone.get_default_timezone()
    constant = (site_time_zone_name(),)
    rows: list[list] = []
    for row in queryset.values_list(*select).iterator(chunk_size=STREAM_CHUNK_ROWS):
        values = list(pick(row + constant))
        for i in text_at:
            value = values[i]
            if value and value[0] in prefixes:
                values[i] = "'" + value
        for i in time_at:
            value = values[i]
            if value is not None:
                values[i] = datetime_text(value if zone is None else value.astimezone(zone))
        if money_at:
            to_text = major_units.formatter(row[currency_at])
            for i in money_at:
                values[i] = to_text(values[i])
        rows.append(values)
        if len(rows) >= STREAM_CHUNK_ROWS:
            yield rows
            rows = []
    if rows:
        yield rows


def _csv_chunk(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def streaming_csv_response(
    queryset, columns: list[Column], *, filename: str
) -> StreamingHttpResponse:
    return _streaming_response(csv_rows(queryset, columns), "text/csv", filename)


def streaming_json_response(
    queryset, columns: list[Column], *, filename: str
) -> StreamingHttpResponse:
    return _streaming_response(json_rows(queryset, columns), "application/json", filename)


def _streaming_response(chunks, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def export_filename(prefix: str, extension: str) -> str:
    return f"{prefix}-{timezone.localtime():%Y-%m-%d-%H%M}.{extension}"


# Appends the changelist's current query string (filters, search, ordering) to the link, so
# the streamed export is exactly what the staff member is looking at. An Alpine directive, not
# an onclick attribute: the Content-Security-Policy (SECURE_CSP) refuses inline handlers, and
# Unfold's page is an Alpine component already.
KEEP_FILTERS_ATTRS = {
    "x-on:click": "$el.href = $el.href.split('?')[0] + window.location.search",
}


class ExportAdminMixin(ExportMixin):
    """import-export for a changelist, limited to staff with reports.export_payments, plus a
    streaming CSV list action over the same filtered queryset.

    Set `stream_columns` and put "export_csv_stream" in the admin's `actions_list`.
    """

    export_form_class = SelectableFieldsExportForm
    formats = [ExportCSV, ExportJSON, ExportXLSX]
    stream_columns: list[Column] = []
    stream_filename = "export"

    def has_export_permission(self, request):
        return has_export_permission(request.user)

    def get_export_queryset(self, request):
        # Without prefetches import-export reads with .iterator() instead of OFFSET paging.
        return super().get_export_queryset(request).prefetch_related(None)

    @action(
        description="Export CSV (streamed, any size)",
        icon="download",
        permissions=["export"],
        attrs=KEEP_FILTERS_ATTRS,
    )
    def export_csv_stream(self, request):
        """GET, no side effects: the filtered changelist as CSV, streamed."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_export_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(ERR_BAD_FILTERS)
        return streaming_csv_response(
            queryset, self.stream_columns, filename=export_filename(self.stream_filename, "csv")
        )


class RefundExportAdminMixin(ExportAdminMixin):
    """Added to the refund queue's admin by reports/admin.py: the filtered queue as CSV,
    streamed (needs the export permission), and import-export's formats. Payments' own
    refunds (the Stripe mirror) export through StripeRefundResource."""

    actions_list = ["export_csv_stream"]
    resource_classes = [RefundRequestResource]
    stream_columns = REFUND_REQUEST_COLUMNS
    stream_filename = "refund-requests"


def write_csv(rows: Iterable[str], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        for chunk in rows:
            handle.write(chunk)
