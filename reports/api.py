"""Exports through the API: the payments and the refund requests as streamed CSV or JSON.

    GET /api/v1/exports/transactions.csv   GET /api/v1/exports/transactions.json
    GET /api/v1/exports/refunds.csv        GET /api/v1/exports/refunds.json

The same code as the admin's streamed export (reports/exports.py: one server-side cursor read
in chunks, flat memory at any size; the columns, units and time zone of
reports/export_columns.py; spreadsheet formulas neutralised), the same permission
(reports.export_payments, as the admin's export buttons), and the list endpoints' filters:
transactions take /api/v1/transactions/'s (payments.api_transactions.TransactionFilter);
refunds /api/v1/refund-requests/'s (refunds.api.RefundRequestFilter, the queue's). The
JSON is an array of objects whose values are text as in the admin's JSON export ("12.30",
"" for none), not the API's money objects: exports are for spreadsheets and accounting
tools, in major units beside a currency column."""

from __future__ import annotations

from django.urls import path
from django_filters import rest_framework as filters
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers
from rest_framework.negotiation import BaseContentNegotiation

from backoffice.api.registry import api_urlpatterns
from payments.api_transactions import TransactionFilter
from payments.models import Payment
from refunds.api import RefundRequestFilter
from refunds.models import RefundRequest

# The reports app's other endpoints register themselves on import: the dashboard, metrics and
# rollups; receipts and their PDF.
from . import api_dashboard, api_receipts  # noqa: F401
from .export_columns import PAYMENT_COLUMNS, REFUND_REQUEST_COLUMNS, headers
from .exports import (
    EXPORT_PERMISSION,
    export_filename,
    streaming_csv_response,
    streaming_json_response,
)


class FirstRendererNegotiation(BaseContentNegotiation):
    """A file download answers in its own type whatever Accept says; errors answer JSON."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportSchema(AutoSchema):
    """Documents the filters of an export, which spectacular shows only on list views."""

    def get_filter_backends(self):
        return getattr(self.view, "filter_backends", [])


class ExportView(generics.GenericAPIView):
    """GET: the filtered rows, streamed (flat memory), newest first."""

    read_permissions = [EXPORT_PERMISSION]
    filter_backends = [filters.DjangoFilterBackend]
    pagination_class = None
    content_negotiation_class = FirstRendererNegotiation
    schema = ExportSchema()
    columns: list = []
    filename_prefix = ""
    file_format = "csv"

    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        filename = export_filename(self.filename_prefix, self.file_format)
        respond = streaming_csv_response if self.file_format == "csv" else streaming_json_response
        return respond(queryset, self.columns, filename=filename)


def _row_serializer(name: str, columns) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={header: serializers.CharField() for header in headers(columns)},
        many=True,
    )


def _export_views(*, name, queryset, filterset_class, columns, filename_prefix, what, filters_of):
    description = (
        f"{what}, streamed (any size, flat memory). Filters as {filters_of}. Needs "
        f"{EXPORT_PERMISSION}, as the admin's export. Money in major units of the row's "
        "currency column; date-times in the site time zone, named in the time_zone column."
    )
    views = {}
    for file_format, response in (
        ("csv", {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")}),
        (
            "json",
            {(200, "application/json"): _row_serializer(f"{name}ExportRow", columns)},
        ),
    ):
        view = type(
            f"{name}{file_format.upper()}ExportView",
            (ExportView,),
            {
                "queryset": queryset,
                "filterset_class": filterset_class,
                "columns": columns,
                "filename_prefix": filename_prefix,
                "file_format": file_format,
                "__module__": __name__,
            },
        )
        views[file_format] = extend_schema_view(
            get=extend_schema(
                summary=f"{what} as {file_format.upper()}",
                description=description,
                responses=response,
                operation_id=f"exports_{filename_prefix.replace('-', '_')}_{file_format}",
            )
        )(view)
    return views


_transactions = _export_views(
    name="Transaction",
    queryset=Payment.objects.select_related("customer").order_by("-created", "-id"),
    filterset_class=TransactionFilter,
    columns=PAYMENT_COLUMNS,
    filename_prefix="payments",
    what="Transactions (payments)",
    filters_of="/api/v1/transactions/",
)
_refunds = _export_views(
    name="RefundRequest",
    queryset=RefundRequest.objects.select_related("payment", "requested_by").order_by(
        "-created_at", "-id"
    ),
    filterset_class=RefundRequestFilter,
    columns=REFUND_REQUEST_COLUMNS,
    filename_prefix="refund-requests",
    what="Refund requests",
    filters_of="/api/v1/refund-requests/",
)

api_urlpatterns += [
    path(
        f"exports/{kind}.{file_format}",
        views[file_format].as_view(),
        name=f"export-{kind}-{file_format}",
    )
    for kind, views in (("transactions", _transactions), ("refunds", _refunds))
    for file_format in ("csv", "json")
]
