"""What reports adds to the payments changelist and page: exports (import-export and a
streamed CSV, both keeping the filters), a "JSON report" bulk action and the receipt link.

Added to the payments admin by reports/admin.py (backoffice.admin_extensions.admin_extend):
payments never imports reports.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.decorators import action, display

from .export_columns import PAYMENT_COLUMNS
from .exports import ExportAdminMixin, PaymentResource
from .models import DocumentKind, Receipt
from .selectors import payments_summary


def receipt_download_url(document: Receipt) -> str:
    return reverse("admin:reports_receipt_pdf", args=[document.pk])


RECEIPT_FIELDSET = ("Receipt", {"fields": ["receipt_download"]})


class PaymentReportsAdminMixin(ExportAdminMixin):
    resource_classes = [PaymentResource]
    stream_columns = PAYMENT_COLUMNS
    stream_filename = "payments"
    actions = ["json_report"]
    actions_list = ["export_csv_stream"]

    def get_export_queryset(self, request):
        return super().get_export_queryset(request).select_related("customer")

    @action(description="JSON report of the selected payments", permissions=["export"])
    def json_report(self, request, queryset):
        """A bulk action (so a POST): per-currency figures of the selection, as a download."""
        report = payments_summary(queryset=queryset)
        response = HttpResponse(
            json.dumps(report, indent=2), content_type="application/json; charset=utf-8"
        )
        stamp = timezone.localtime().strftime("%Y-%m-%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="payments-report-{stamp}.json"'
        return response

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and request.user.has_perm("reports.view_receipt"):
            fieldsets.append(RECEIPT_FIELDSET)
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "receipt_download"]

    @display(description="Receipt and credit notes")
    def receipt_download(self, obj):
        documents = list(Receipt.objects.filter(payment=obj).order_by("kind", "sequence")[:20])
        if not documents:
            return "No receipt yet" if obj.is_captured else "None (not captured)"
        links = [
            format_html(
                '<a href="{}" class="text-primary-600 underline">{} ({})</a>',
                receipt_download_url(document),
                document.number,
                "receipt" if document.kind == DocumentKind.RECEIPT else "credit note",
            )
            for document in documents
        ]
        return format_html(" &nbsp; ".join(["{}"] * len(links)), *links)
