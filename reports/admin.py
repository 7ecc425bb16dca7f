"""Analytics (the rollups) and receipts in the admin. Read-only: figures come from
reports.rollups, documents from reports.receipts."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action, display
from unfold.utils import parse_date_str

from backoffice.admin_cells import two_line
from backoffice.admin_extensions import admin_extend
from backoffice.changelist import ChangelistMixin
from payments.admin.display import money
from payments.admin.filters import CurrencyFilter
from payments.models import Dispute, EarningEntry, Instructor, Payment
from refunds.models import RefundRequest

from . import dashboard
from .dispute_admin import DisputeRespondAdminMixin
from .exports import RefundExportAdminMixin
from .ledger_export import EarningLedgerExportAdminMixin
from .models import DailyRollup, Receipt
from .payment_admin import PaymentReportsAdminMixin
from .pdf import receipt_pdf
from .selectors import rollup_chart_series, rollup_totals
from .statement_admin import InstructorStatementAdminMixin

# Exports, the "JSON report" action and the receipt link on the payments changelist and page;
# the refund queue's exports. Added from here: payments and refunds never import reports.
admin_extend(Payment, PaymentReportsAdminMixin)
admin_extend(RefundRequest, RefundExportAdminMixin)
# The evidence packet, the evidence form and save / submit / accept on the dispute page.
admin_extend(Dispute, DisputeRespondAdminMixin)
# The monthly statement (page and PDF) on the instructor page; the earnings ledger's export.
admin_extend(Instructor, InstructorStatementAdminMixin)
# The earnings ledger's list as CSV / JSON (streamed) and import-export's formats.
admin_extend(EarningEntry, EarningLedgerExportAdminMixin)

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

    # Chosen to fit 1280 px with the sidebar open (tests/e2e/test_layouts.py): the currency
    # under the day, the outcomes under the attempts, the fees under the gross, the median
    # refund time under the refunds. The totals above show every figure on its own.
    list_display = [
        "day_cell",
        "attempts_cell",
        "success_badge",
        "gross",
        "net",
        "refunded",
        "disputes_opened",
    ]
    list_filter = [("day", DayRangeFilter), CurrencyFilter]
    list_filter_submit = True
    list_per_page = 60
    ordering = ["-day", "currency"]
    show_full_result_count = False
    list_before_template = "reports/admin/analytics_before.html"
    date_hierarchy = None
    # The page: every money figure through the money formatter and the JSON breakdowns as
    # readable lines (the columns hold minor units and raw JSON, for exports and the charts).
    fieldsets = [
        (None, {"fields": ["day", "currency_code", "computed_at"]}),
        (
            "Payments",
            {
                "fields": [
                    "attempted_count",
                    "succeeded_count",
                    "failed_count",
                    "canceled_count",
                    "success_rate_cell",
                    "conversion_rate_cell",
                ]
            },
        ),
        (
            "Money",
            {"fields": ["gross", "stripe_fee", "platform_fee", "net", "average", "refunded"]},
        ),
        ("Breakdowns", {"fields": ["methods_breakdown", "failures_breakdown"]}),
        (
            "Disputes and refund requests",
            {
                "fields": [
                    "disputes_opened",
                    "refund_requests_processed",
                    "median_refund_hours",
                ]
            },
        ),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

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

    @display(description="Day", ordering="day")
    def day_cell(self, obj):
        return two_line(obj.day.isoformat(), obj.currency.upper())

    @display(description="Payments", ordering="attempted_count")
    def attempts_cell(self, obj):
        return two_line(
            f"{obj.attempted_count:,} attempted",
            f"{obj.succeeded_count:,} succeeded · {obj.failed_count:,} failed",
        )

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
        fees = money(obj.stripe_fee_amount + obj.platform_fee_amount, obj.currency)
        return two_line(money(obj.gross_amount, obj.currency), format_html("fees {}", fees))

    @display(description="Net", ordering="net_amount")
    def net(self, obj):
        return money(obj.net_amount, obj.currency)

    @display(description="Currency", ordering="currency")
    def currency_code(self, obj):
        return obj.currency.upper()

    @display(description="Success rate")
    def success_rate_cell(self, obj):
        return "—" if obj.success_rate is None else f"{obj.success_rate} %"

    @display(description="Conversion rate")
    def conversion_rate_cell(self, obj):
        return "—" if obj.conversion_rate is None else f"{obj.conversion_rate} %"

    @display(description="Stripe fees")
    def stripe_fee(self, obj):
        return money(obj.stripe_fee_amount, obj.currency)

    @display(description="Platform fees")
    def platform_fee(self, obj):
        return money(obj.platform_fee_amount, obj.currency)

    @display(description="Average payment")
    def average(self, obj):
        return money(obj.average_amount, obj.currency)

    @display(description="Payment methods")
    def methods_breakdown(self, obj):
        # {"card": {"attempted": 10, "succeeded": 9, "amount": 45000}, ...}: one line each.
        lines = [
            (
                method.replace("_", " "),
                figures.get("attempted", 0),
                figures.get("succeeded", 0),
                money(figures.get("amount", 0), obj.currency),
            )
            for method, figures in sorted((obj.payment_methods or {}).items())
            if isinstance(figures, dict)
        ]
        if not lines:
            return "—"
        return format_html_join("", "<div>{}: {} attempted, {} succeeded, {} captured</div>", lines)

    @display(description="Failure reasons")
    def failures_breakdown(self, obj):
        reasons = sorted((obj.failure_reasons or {}).items(), key=lambda item: -item[1])
        if not reasons:
            return "—"
        return format_html_join(
            "", "<div>{}: {}</div>", ((reason.replace("_", " "), n) for reason, n in reasons)
        )

    @display(description="Refunded", ordering="refunded_amount")
    def refunded(self, obj):
        median = (
            f"median {obj.median_refund_hours} h" if obj.median_refund_hours is not None else ""
        )
        if not obj.refunded_count:
            return two_line("—", median)
        return two_line(
            format_html("{} ({})", money(obj.refunded_amount, obj.currency), obj.refunded_count),
            median,
        )


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
        "amount_cell",
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
