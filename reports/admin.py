"""Analytics (the rollups) and receipts in the admin. Read-only: figures come from
reports.rollups, documents from reports.receipts."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action, display
from unfold.utils import parse_date_str

from backoffice.admin_extensions import admin_extend
from backoffice.changelist import ChangelistMixin
from payments.admin.display import money
from payments.admin.filters import CurrencyFilter
from payments.models import Dispute, Payment
from refunds.models import RefundRequest

from . import dashboard
from .dispute_admin import DisputeRespondAdminMixin
from .exports import RefundExportAdminMixin
from .models import DailyRollup, Receipt
from .payment_admin import PaymentReportsAdminMixin
from .pdf import receipt_pdf
from .selectors import rollup_chart_series, rollup_totals

# Exports, the "JSON report" action and the receipt link on the payments changelist and page;
# the refund queue's exports. Added from here: payments and refunds never import reports.
admin_extend(Payment, PaymentReportsAdminMixin)
admin_extend(RefundRequest, RefundExportAdminMixin)
# The evidence packet, the evidence form and save / submit / accept on the dispute page.
admin_extend(Dispute, DisputeRespondAdminMixin)

WARN_BAD_DATE = "Ignored the date {value!r}: use YYYY-MM-DD."


class DayRangeFilter(RangeDateFilter):
    """Date range on the rollup day; a value that is not a date is ignored with a message."""

    checks_own_values = True  # backoffice.changelist leaves its parameters to it

    def queryset(self, request, queryset):
        for suffix in ("_from", "_to"):
            key = f"{self.parameter_name}{suffix}"
            raw = self.used_parameters.get(key)
            if raw not in (None, "") and parse_date_str(raw) is None:
                messages.warning(request, WARN_BAD_DATE.format(value=raw))
                self.used_parameters.pop(key)
        return super().queryset(request, queryset)


def rate_tone(rate, *, target) -> str:
    if rate is None:
        return "info"
    return "success" if rate >= target else "danger"


@admin.register(DailyRollup)
class DailyRollupAdmin(ChangelistMixin, ModelAdmin):
    """The analytics changelist: one row per day and currency, totals per currency above."""

    list_display = [
        "day",
        "currency_code",
        "attempted_count",
        "succeeded_count",
        "failed_count",
        "success_badge",
        "gross",
        "fees",
        "net",
        "refunded",
        "disputes_opened",
        "median_refund_hours",
    ]
    list_filter = [("day", DayRangeFilter), CurrencyFilter]
    list_filter_submit = True
    list_per_page = 60
    ordering = ["-day", "currency"]
    show_full_result_count = False
    list_before_template = "reports/admin/analytics_before.html"
    date_hierarchy = None
    readonly_fields = [f.name for f in DailyRollup._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            queryset = context["cl"].queryset
            series = rollup_chart_series(queryset=queryset)
            context["analytics"] = {
                "totals": rollup_totals(queryset=queryset),
                "revenue_charts": dashboard.revenue_charts(series),
                "success_chart": dashboard.success_chart_json(series),
                "revenue_options": dashboard.REVENUE_CHART_OPTIONS,
                "rate_options": dashboard.RATE_CHART_OPTIONS,
                "target": dashboard.success_target(),
            }
        return response

    @display(description="Currency", ordering="currency")
    def currency_code(self, obj):
        return obj.currency.upper()

    @display(
        description="Success rate",
        ordering="success_rate",
        label={"success": "success", "danger": "danger", "info": "info"},
    )
    def success_badge(self, obj):
        if obj.success_rate is None:
            return "info", "—"
        return rate_tone(obj.success_rate, target=dashboard.success_target()), (
            f"{obj.success_rate} %"
        )

    @display(description="Gross", ordering="gross_amount")
    def gross(self, obj):
        return money(obj.gross_amount, obj.currency)

    @display(description="Fees (Stripe + platform)")
    def fees(self, obj):
        return money(obj.stripe_fee_amount + obj.platform_fee_amount, obj.currency)

    @display(description="Net", ordering="net_amount")
    def net(self, obj):
        return money(obj.net_amount, obj.currency)

    @display(description="Refunded", ordering="refunded_amount")
    def refunded(self, obj):
        if not obj.refunded_count:
            return "—"
        return format_html("{} ({})", money(obj.refunded_amount, obj.currency), obj.refunded_count)


ERR_NO_RECEIPT_PERMISSION = "You may not download receipts."


@admin.register(Receipt)
class ReceiptAdmin(ChangelistMixin, ModelAdmin):
    list_display = ["number", "kind_badge", "payment_link", "amount_cell", "issued_at"]
    list_filter = [("kind", ChoicesDropdownFilter), CurrencyFilter]
    list_filter_submit = True
    list_select_related = ["payment"]
    search_fields = ["number"]
    search_help_text = (
        "Searches: a receipt or credit note number (REC-2026-000123) or its beginning, any case."
    )
    ordering = ["-issued_at", "-id"]
    show_full_result_count = False
    actions_row = ["download_row"]
    actions_detail = ["download_detail"]
    readonly_fields = [
        "number",
        "kind",
        "payment",
        "amount",
        "currency",
        "reference",
        "stripe_refund_id",
        "refund_request_id",
        "issued_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip().upper()[:32]
        if not term:
            return queryset, False
        return queryset.filter(number__startswith=term), False

    def get_urls(self):
        return [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="reports_receipt_pdf",
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request, pk):
        """GET, read-only: the document as PDF, for staff who may view receipts."""
        if not self.has_view_permission(request):
            raise PermissionDenied(ERR_NO_RECEIPT_PERMISSION)
        document = get_object_or_404(Receipt.objects.select_related("payment__customer"), pk=pk)
        response = HttpResponse(receipt_pdf(document), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{document.number}.pdf"'
        return response

    @action(description="Download PDF", icon="download")
    def download_row(self, request, object_id):
        return self.pdf_view(request, int(object_id))

    @action(description="Download PDF", icon="download")
    def download_detail(self, request, object_id):
        try:
            return self.pdf_view(request, int(object_id))
        except ValueError as exc:
            raise Http404 from exc

    @display(
        description="Kind", ordering="kind", label={"receipt": "success", "credit_note": "warning"}
    )
    def kind_badge(self, obj):
        return obj.kind, obj.get_kind_display()

    @display(description="Payment")
    def payment_link(self, obj):
        url = reverse("admin:payments_payment_change", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a>', url, obj.payment.stripe_payment_intent_id)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        amount = money(obj.amount, obj.currency)
        return format_html("-{}", amount) if obj.kind == "credit_note" else amount
