from django.conf import settings
from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter
from unfold.decorators import display
from unfold.utils import display_for_label

from backoffice.admin_cells import FastActionCheckboxMixin, badge, two_line, with_note
from backoffice.admin_rows import FastChangeListRowsMixin
from backoffice.changelist import ChangelistMixin
from backoffice.formats import format_datetime
from backoffice.pagination import CURSOR_VAR, KeysetPaginationMixin
from payments import ledger, selectors
from payments.models import Dispute, Payment, Refund
from payments.money import format_money
from payments.stripe_links import stripe_dashboard_url

from .display import (
    PAYMENT_STATUS_COLOURS,
    customer_two_line,
    external_link,
    money,
    status_text,
)
from .filters import AmountRangeFilter, CreatedDateRangeFilter, CurrencyFilter
from .payment_retry import PaymentRetryAdminMixin


class ReadOnlyInline(TabularInline):
    extra = 0
    show_title = False  # the first column already names the row
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefundInline(ReadOnlyInline):
    model = Refund
    verbose_name_plural = "Refund history"
    fields = ["stripe_id", "amount_display", "status_display", "reason", "created"]
    readonly_fields = fields

    @display(description="Amount")
    def amount_display(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Status")
    def status_display(self, obj):
        return status_text(obj)


class DisputeInline(ReadOnlyInline):
    model = Dispute
    fields = [
        "stripe_id",
        "amount_display",
        "status_display",
        "reason",
        "evidence_due_by",
        "created",
    ]
    readonly_fields = fields

    @display(description="Amount")
    def amount_display(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Status")
    def status_display(self, obj):
        return status_text(obj)


class PaymentAdmin(
    KeysetPaginationMixin,
    ChangelistMixin,
    FastActionCheckboxMixin,
    FastChangeListRowsMixin,
    PaymentRetryAdminMixin,
    ModelAdmin,
):
    """Payments mirror Stripe: staff read them here and act through actions, never edit.

    Apps above payments add to this page with backoffice.admin_extensions.admin_extend
    (refunds: the refund links; reports: exports, the JSON report and the receipt), so
    payments imports neither."""

    # Chosen to fit 1280 px with the sidebar open (tests/e2e/test_layouts.py): the product
    # under the payment id, the net under the amount, the failure code under the status; the
    # method is a filter and on the payment page.
    list_display = [
        "payment_cell",
        "amount_cell",
        "status_badge",
        "customer_cell",
        "created_cell",
    ]
    list_display_links = ["payment_cell"]
    list_select_related = ["customer"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("payment_method_type", ChoicesDropdownFilter),
        CurrencyFilter,
        ("created", CreatedDateRangeFilter),
        AmountRangeFilter,
        ("livemode", BooleanRadioFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    list_max_show_all = 500
    # Pages past the first are seeks from the last row seen (backoffice/pagination.py); the
    # cursor is ours, not a filter (backoffice/changelist.py checks every other parameter).
    extra_query_params = frozenset({CURSOR_VAR})
    # No "N of M" total: that is a second COUNT(*) over the whole table.
    show_full_result_count = False
    search_spec = selectors.PAYMENT_SEARCH
    ordering = ["-created", "-id"]
    inlines = [RefundInline, DisputeInline]
    # A POST "Retry payment" button on failed payments (payments/admin/payment_retry.py) and
    # a link to the payment's Stripe webhook events.
    change_form_outer_before_template = "payments/admin/payment_page_tools.html"

    fieldsets = [
        (
            "Summary",
            {
                "fields": [
                    "status_label",
                    "stripe_status",
                    "fee_breakdown",
                    "stripe_links",
                    "description",
                ]
            },
        ),
        (
            "Marketplace (from the payment's metadata)",
            {
                "fields": [
                    "metadata_gaps",
                    "instructor",
                    "product_kind",
                    "product_id",
                    "product_name",
                    "package_minutes",
                    "coupon_code",
                    "booking_id",
                ]
            },
        ),
        ("Customer", {"fields": ["customer", "payment_method", "payment_method_type"]}),
        ("Failure", {"fields": ["failure_code", "decline_code", "failure_message"]}),
        ("Timeline", {"fields": ["timeline"]}),
        (
            "Details",
            {
                "classes": ["collapse"],
                "fields": [
                    "stripe_payment_intent_id",
                    "stripe_charge_id",
                    "livemode",
                    "ip_address",
                    "billing_details",
                    "metadata",
                    "created",
                    "succeeded_at",
                    "failed_at",
                    "canceled_at",
                ],
            },
        ),
    ]
    # A mirror of Stripe: every field on the page is read-only.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Payment", ordering="created")
    def payment_cell(self, obj):
        product = " · ".join(
            part for part in (obj.get_product_kind_display(), obj.description) if part
        )
        return two_line(obj.stripe_payment_intent_id, product, clip=True)

    @display(description="Customer")
    def customer_cell(self, obj):
        return customer_two_line(obj.customer)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        # The net is the ledger's stored figure: the payment page's last breakdown line.
        net = f"net {money(obj.net, obj.currency)}" if obj.is_captured else ""
        return two_line(money(obj.amount, obj.currency), net)

    @display(description="Status", ordering="status")
    def status_badge(self, obj):
        if obj.status in PAYMENT_STATUS_COLOURS:
            cell = badge(obj.get_status_display(), PAYMENT_STATUS_COLOURS[obj.status])
        else:
            cell = status_text(obj)  # a status Stripe added: raw, in a warning badge
        # Why it failed, where the method column used to say it.
        reason = obj.decline_code or obj.failure_code
        return with_note(cell, reason, clip=True) if reason else cell

    @display(description="Status")
    def status_label(self, obj):
        # Detail pages don't apply `label=`; render the same badge explicitly.
        return display_for_label(
            (obj.status, obj.get_status_display()), "-", PAYMENT_STATUS_COLOURS
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Everything here is read-only (a mirror of Stripe): no Save buttons to mislead.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @display(description="Created", ordering="created")
    def created_cell(self, obj):
        # The site's one date format, naming its time zone.
        return format_datetime(obj.created)

    @display(description="Amount, fees and net")
    def fee_breakdown(self, obj):
        # Every line comes from the ledger and they add up to the net the changelist shows.
        figures = ledger.payment_breakdown(payment=obj)
        rows = [("Amount", figures.amount)]
        if figures.refunded:
            rows.append(("Refunded to the customer", -figures.refunded))
        rows += [
            ("Stripe fee", -figures.stripe_fee),
            ("Platform fee", -figures.platform_fee_gross),
        ]
        if figures.platform_fee_returned:
            rows.append(("Platform fee returned with refunds", figures.platform_fee_returned))
        if figures.instructor_dispute_loss:
            label = (
                "Lost in disputes"
                if settings.DISPUTE_LOSS_BORNE_BY == "instructor"
                else "Dispute fees"
            )
            rows.append((label, -figures.instructor_dispute_loss))
        rows.append(("Net to instructor", figures.net_to_instructor))
        return render_to_string(
            "payments/admin/fee_breakdown.html",
            {
                "rows": [(label, format_money(value, obj.currency)) for label, value in rows],
                "captured": figures.captured,
                "platform_keeps": format_money(figures.net_to_platform, obj.currency),
                "disputed_lost": format_money(figures.disputed_lost, obj.currency)
                if figures.disputed_lost
                else "",
                "stale": figures.captured and figures.net_to_instructor != obj.net,
            },
        )

    @display(description="Metadata")
    def metadata_gaps(self, obj):
        if not obj.metadata_problems:
            return "Complete: the checkout sent every field this payment needs."
        return render_to_string(
            "payments/admin/metadata_problems.html", {"problems": obj.metadata_problems}
        )

    @display(description="Stripe dashboard")
    def stripe_links(self, obj):
        links = [
            external_link(
                stripe_dashboard_url(
                    "payment_intent", obj.stripe_payment_intent_id, livemode=obj.livemode
                ),
                "Payment",
            )
        ]
        if obj.customer_id:
            links.append(
                external_link(
                    stripe_dashboard_url("customer", obj.customer.stripe_id, livemode=obj.livemode),
                    "Customer",
                )
            )
        return format_html(" &nbsp; ".join(["{}"] * len(links)), *links)

    @display(description="Timeline")
    def timeline(self, obj):
        return render_to_string(
            "payments/admin/timeline.html",
            {"entries": selectors.payment_timeline(payment=obj)},
        )


admin.site.register(Payment, PaymentAdmin)
