"""Exports of payments and refunds: django-import-export (CSV, JSON, XLSX) for everyday sizes
and a streaming CSV for any size. Both keep the changelist's filters, both need the export
permission, both neutralise spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from import_export import fields, resources
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX
from unfold.contrib.import_export.forms import SelectableFieldsExportForm
from unfold.decorators import action

from payments.models import Payment, Refund
from payments.money import decimal_places, is_known_currency, to_decimal_stored
from refunds.models import RefundRequest

# Configured here rather than with IMPORT_EXPORT_EXPORT_PERMISSION_CODE: that setting asks for
# `<app>.export_<model>` on every exporting model, which the models of other apps do not define.
EXPORT_PERMISSION = "reports.export_payments"
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STREAM_CHUNK_ROWS = 2000
ERR_BAD_FILTERS = "The changelist filters in this link are not valid."


def neutralise(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe, which makes
    it literal text. Numbers, dates and None pass untouched."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def has_export_permission(user) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(EXPORT_PERMISSION))


class _MinorUnits:
    """Minor units -> major-unit text ("1234" usd -> "12.34") without a Decimal per row: the
    streamed CSV's formatter per currency (import-export cells use `major_amount`)."""

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


def major_amount(amount: int | None, currency: str) -> Decimal | None:
    """An exported money cell: a Decimal in major units, so spreadsheets get a number (not
    text) and a negative net is not mistaken for a formula and quoted."""
    return None if amount is None else to_decimal_stored(amount, currency)


class SafeResource(resources.ModelResource):
    """ModelResource whose every exported cell is neutralised."""

    def export_resource(self, instance, selected_fields=None, **kwargs):
        row = super().export_resource(instance, selected_fields=selected_fields, **kwargs)
        return [neutralise(value) for value in row]


def _money_field(column: str, attribute: str) -> fields.Field:
    return fields.Field(column_name=column, attribute=attribute, readonly=True)


class PaymentResource(SafeResource):
    """One row per payment; amounts in major units of `currency` (12.50), never converted."""

    customer_email = fields.Field(column_name="customer_email", readonly=True)
    customer_name = fields.Field(column_name="customer_name", readonly=True)
    amount = _money_field("amount", "amount")
    amount_refunded = _money_field("amount_refunded", "amount_refunded")
    stripe_fee = _money_field("stripe_fee", "stripe_fee")
    platform_fee = _money_field("platform_fee", "platform_fee")
    net = _money_field("net", "net")

    class Meta:
        model = Payment
        fields = [
            "stripe_payment_intent_id",
            "stripe_charge_id",
            "created",
            "status",
            "currency",
            "amount",
            "amount_refunded",
            "stripe_fee",
            "platform_fee",
            "net",
            "payment_method_type",
            "customer_email",
            "customer_name",
            "product_kind",
            "description",
            "failure_code",
            "decline_code",
            "failure_message",
            "succeeded_at",
        ]
        export_order = fields

    def get_queryset(self):
        return Payment.objects.select_related("customer")

    def dehydrate_customer_email(self, payment):
        return payment.customer.email if payment.customer_id else ""

    def dehydrate_customer_name(self, payment):
        return payment.customer.name if payment.customer_id else ""

    def dehydrate_amount(self, payment):
        return major_amount(payment.amount, payment.currency)

    def dehydrate_amount_refunded(self, payment):
        return major_amount(payment.amount_refunded, payment.currency)

    def dehydrate_stripe_fee(self, payment):
        return major_amount(payment.stripe_fee, payment.currency)

    def dehydrate_platform_fee(self, payment):
        return major_amount(payment.platform_fee, payment.currency)

    def dehydrate_net(self, payment):
        return major_amount(payment.net, payment.currency)


class StripeRefundResource(SafeResource):
    """Refunds as mirrored from Stripe (payments.Refund)."""

    payment = fields.Field(column_name="payment_intent", readonly=True)
    amount = _money_field("amount", "amount")

    class Meta:
        model = Refund
        fields = ["stripe_id", "created", "status", "currency", "amount", "reason", "payment"]
        export_order = fields

    def get_queryset(self):
        return Refund.objects.select_related("payment")

    def dehydrate_payment(self, refund):
        return refund.payment.stripe_payment_intent_id

    def dehydrate_amount(self, refund):
        return major_amount(refund.amount, refund.currency)


class RefundRequestResource(SafeResource):
    """Refund requests (the refund queue): who asked, how much, how far it got."""

    payment_intent = fields.Field(column_name="payment_intent", readonly=True)
    requested_by = fields.Field(column_name="requested_by", readonly=True)
    amount = _money_field("amount", "amount")

    class Meta:
        model = RefundRequest
        fields = [
            "id",
            "created_at",
            "status",
            "currency",
            "amount",
            "reason",
            "internal_reason",
            "source",
            "payment_intent",
            "requested_by",
            "approved_at",
            "processed_at",
            "stripe_refund_id",
            "failure_message",
        ]
        export_order = fields

    def get_queryset(self):
        return RefundRequest.objects.select_related("payment", "requested_by")

    def dehydrate_payment_intent(self, obj):
        return obj.payment.stripe_payment_intent_id

    def dehydrate_requested_by(self, obj):
        return obj.requested_by.get_username() if obj.requested_by_id else ""

    def dehydrate_amount(self, obj):
        return major_amount(obj.amount, obj.currency)


# --- Streaming CSV: values_list + iterator, flat memory whatever the size -------------------

# Column kinds of the streamed CSV: how a value is turned into text.
TEXT, MONEY, DATETIME, RAW = "text", "money", "datetime", "raw"

PAYMENT_STREAM_COLUMNS = [
    # (header, values_list path, kind)
    ("stripe_payment_intent_id", "stripe_payment_intent_id", TEXT),
    ("created", "created", DATETIME),
    ("status", "status", TEXT),
    ("currency", "currency", TEXT),
    ("amount", "amount", MONEY),
    ("amount_refunded", "amount_refunded", MONEY),
    ("stripe_fee", "stripe_fee", MONEY),
    ("platform_fee", "platform_fee", MONEY),
    ("net", "net", MONEY),
    ("payment_method_type", "payment_method_type", TEXT),
    ("customer_email", "customer__email", TEXT),
    ("product_kind", "product_kind", TEXT),
    ("description", "description", TEXT),
    ("failure_code", "failure_code", TEXT),
    ("decline_code", "decline_code", TEXT),
]


def csv_rows(queryset, columns: list[tuple[str, str, str]]) -> Iterator[str]:
    """CSV text in chunks of STREAM_CHUNK_ROWS rows. Reads with a server-side cursor
    (PostgreSQL) in chunks, so memory does not grow with the number of rows. The per-row
    work is specialised by column kind up front: this loop is the export's hot path."""
    paths = [path for _, path, _ in columns]
    text_at = [i for i, (_, _, kind) in enumerate(columns) if kind == TEXT]
    money_at = [i for i, (_, _, kind) in enumerate(columns) if kind == MONEY]
    time_at = [i for i, (_, _, kind) in enumerate(columns) if kind == DATETIME]
    currency_at = paths.index("currency") if money_at else None
    prefixes = frozenset(FORMULA_PREFIXES)
    header = io.StringIO()
    csv.writer(header).writerow([name for name, _, _ in columns])
    yield header.getvalue()
    rows: list[list] = []
    for row in queryset.values_list(*paths).iterator(chunk_size=STREAM_CHUNK_ROWS):
        values = list(row)
        for i in text_at:
            value = values[i]
            if value and value[0] in prefixes:
                values[i] = "'" + value
        for i in time_at:
            value = values[i]
            if value is not None:
                values[i] = value.isoformat()
        if money_at:
            to_text = major_units.formatter(row[currency_at])
            for i in money_at:
                values[i] = to_text(values[i])
        rows.append(values)
        if len(rows) >= STREAM_CHUNK_ROWS:
            yield _csv_chunk(rows)
            rows = []
    if rows:
        yield _csv_chunk(rows)


def _csv_chunk(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def streaming_csv_response(
    queryset, columns: list[tuple[str, str, str]], *, filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_rows(queryset, columns), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _export_filename(prefix: str, extension: str) -> str:
    return f"{prefix}-{timezone.localtime():%Y-%m-%d-%H%M}.{extension}"


# Appends the changelist's current query string (filters, search, ordering) to the link, so
# the streamed export is exactly what the staff member is looking at.
KEEP_FILTERS_ATTRS = {
    "onclick": "this.href = this.href.split('?')[0] + window.location.search;",
}


class ExportAdminMixin(ExportMixin):
    """import-export for a changelist, limited to staff with reports.export_payments, plus a
    streaming CSV list action over the same filtered queryset.

    Set `stream_columns` and put "export_csv_stream" in the admin's `actions_list`.
    """

    export_form_class = SelectableFieldsExportForm
    formats = [CSV, JSON, XLSX]
    stream_columns: list[tuple[str, str, str]] = []
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
            queryset, self.stream_columns, filename=_export_filename(self.stream_filename, "csv")
        )


REFUND_REQUEST_STREAM_COLUMNS = [
    ("id", "id", RAW),
    ("created_at", "created_at", DATETIME),
    ("status", "status", TEXT),
    ("currency", "currency", TEXT),
    ("amount", "amount", MONEY),
    ("reason", "reason", TEXT),
    ("internal_reason", "internal_reason", TEXT),
    ("payment_intent", "payment__stripe_payment_intent_id", TEXT),
    ("requested_by", "requested_by__username", TEXT),
    ("approved_at", "approved_at", DATETIME),
    ("processed_at", "processed_at", DATETIME),
    ("stripe_refund_id", "stripe_refund_id", TEXT),
    ("failure_message", "failure_message", TEXT),
]


class RefundExportAdminMixin(ExportAdminMixin):
    """Added to the refund queue's admin by reports/admin.py: the filtered queue as CSV,
    streamed (needs the export permission), and import-export's formats. Payments' own
    refunds (the Stripe mirror) export through StripeRefundResource."""

    actions_list = ["export_csv_stream"]
    resource_classes = [RefundRequestResource]
    stream_columns = REFUND_REQUEST_STREAM_COLUMNS
    stream_filename = "refund-requests"


def write_csv(rows: Iterable[str], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        for chunk in rows:
            handle.write(chunk)
