"""Receipts and credit notes through the API: the list, one document, and its PDF (the one
the admin's "Download PDF" gives, reports/pdf.py). Read-only: documents are issued by
reports.receipts when a payment succeeds or a refund is processed, never on request."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer

from backoffice.api.fields import MoneyField
from backoffice.api.registry import api_router
from payments.api_transactions import CurrencyFilter

from .models import DocumentKind, Receipt
from .pdf import receipt_pdf


class PdfRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/pdf` (the view answers errors in JSON)."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return JSONRenderer().render(data)


class ReceiptSerializer(serializers.ModelSerializer):
    amount = MoneyField(help_text="Paid (receipt) or refunded (credit note).")
    stripe_payment_intent_id = serializers.CharField(
        source="payment.stripe_payment_intent_id", read_only=True
    )
    pdf = serializers.HyperlinkedIdentityField(view_name="api:receipt-pdf")

    class Meta:
        model = Receipt
        fields = [
            "id",
            "number",
            "kind",
            "payment",
            "stripe_payment_intent_id",
            "amount",
            "reference",
            "stripe_refund_id",
            "refund_request_id",
            "issued_at",
            "pdf",
        ]
        read_only_fields = fields


class ReceiptFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=DocumentKind.choices)
    payment = filters.NumberFilter(field_name="payment_id")
    number = filters.CharFilter(method="filter_number", help_text="A number or its beginning.")
    currency = CurrencyFilter()
    issued_after = filters.IsoDateTimeFilter(field_name="issued_at", lookup_expr="gte")
    issued_before = filters.IsoDateTimeFilter(field_name="issued_at", lookup_expr="lt")

    class Meta:
        model = Receipt
        fields = []

    def filter_number(self, queryset, name, value):
        # As the admin's search: numbers are upper case (REC-2026-000123).
        return queryset.filter(number__startswith=value.strip().upper()[:32])


@extend_schema_view(
    list=extend_schema(summary="Receipts and credit notes", description="Newest first."),
    retrieve=extend_schema(summary="A receipt or credit note"),
)
class ReceiptViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ReceiptSerializer
    filterset_class = ReceiptFilter
    queryset = Receipt.objects.select_related("payment").order_by("-issued_at", "-id")

    def handle_exception(self, exc):
        # An error is the API's JSON error shape, whatever the client accepted for the PDF.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        summary="The document as PDF",
        responses={
            (200, "application/pdf"): OpenApiResponse(
                response=OpenApiTypes.BINARY, description="The PDF, as an attachment."
            )
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PdfRenderer])
    def pdf(self, request, pk=None):
        document = get_object_or_404(Receipt.objects.select_related("payment__customer"), pk=pk)
        response = HttpResponse(receipt_pdf(document), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{document.number}.pdf"'
        return response


api_router.register("receipts", ReceiptViewSet, basename="receipt")
