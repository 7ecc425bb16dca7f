from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display

from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.pagination import EstimatedCountPaginator
from payments.admin.display import UNKNOWN_STATUS_LABEL, money
from payments.ledger import CLOSED_DISPUTE_STATUSES
from payments.models import (
    Dispute,
    PaymentMethod,
)

from .display import customer_label
from .dispute_page import COUNTDOWN_COLOURS, DisputePageMixin, deadline_countdown
from .saved_payment_methods import CardExpiryFilter, SavedPaymentMethodAdminMixin, expiry_cell


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ChangelistMixin, SavedPaymentMethodAdminMixin, ModelAdmin):
    list_display = ["stripe_id", "customer", "method", "expiry", "is_default", "created"]
    list_select_related = ["customer"]
    list_filter = [("type", ChoicesDropdownFilter), CardExpiryFilter, "is_default"]
    search_spec = SearchSpec(
        ids=(("pm_", "stripe_id"), ("card_", "stripe_id"), ("cus_", "customer__stripe_id")),
        text=("customer__name", "customer__email"),
        help_text=(
            "Searches: customer name or e-mail (any part, any case); a whole Stripe payment "
            "method id (pm_, card_) or customer id (cus_) in any case."
        ),
    )
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = [
        "stripe_id",
        "customer",
        "type",
        "card_brand",
        "card_last4",
        "card_exp_month",
        "card_exp_year",
        "is_default",
        "created",
    ]

    def has_add_permission(self, request):
        return False

    @display(description="Method")
    def method(self, obj):
        return str(obj)

    @display(description="Expires")
    def expiry(self, obj):
        return expiry_cell(obj)


OPEN_DISPUTE_STATUSES = [
    Dispute.Status.NEEDS_RESPONSE,
    Dispute.Status.WARNING_NEEDS_RESPONSE,
]


@admin.register(Dispute)
class DisputeAdmin(ChangelistMixin, DisputePageMixin, ModelAdmin):
    """Chargebacks mirrored from Stripe, the worklist ordered by the evidence deadline. The
    page (payments/admin/dispute_page.py) shows the dispute and its evidence; reports adds the
    evidence form, the packet and the respond buttons (reports/dispute_admin.py)."""

    list_display = [
        "stripe_id",
        "payment",
        "customer_cell",
        "amount_cell",
        "status_badge",
        "reason_cell",
        "due",
    ]
    list_select_related = ["payment", "payment__customer"]
    list_filter = [("status", ChoicesDropdownFilter), "reason"]
    search_spec = SearchSpec(
        ids=(
            ("dp_", "stripe_id"),
            ("du_", "stripe_id"),
            ("pi_", "payment__stripe_payment_intent_id"),
            ("ch_", "payment__stripe_charge_id"),
            ("py_", "payment__stripe_charge_id"),
        ),
        text=("payment__customer__name", "payment__customer__email"),
        help_text=(
            "Searches: customer name or e-mail (any part, any case); a whole Stripe id in any "
            "case: dispute dp_, payment pi_, charge ch_."
        ),
    )
    ordering = ["evidence_due_by", "id"]
    show_full_result_count = False
    readonly_fields = [
        "stripe_id",
        "payment",
        "customer_link",
        "amount_cell",
        "status_badge",
        "reason_cell",
        "evidence_due_by",
        "created",
        "closed_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Reason", ordering="reason")
    def reason_cell(self, obj):
        return obj.reason_label or "—"

    @display(description="Customer")
    def customer_cell(self, obj):
        return customer_label(obj.payment.customer)

    @display(description="Customer")
    def customer_link(self, obj):
        customer = obj.payment.customer
        if customer is None:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_customer_change", args=[customer.pk]),
            customer_label(customer),
        )

    @display(
        description="Status",
        ordering="status",
        label={
            "open": "danger",
            "review": "warning",
            "won": "success",
            "closed": "info",
            "unknown": "warning",
        },
    )
    def status_badge(self, obj):
        if not obj.status_known:
            # Stored as Stripe sent it (never skipped): raw, flagged; the ledger counts it open.
            return "unknown", UNKNOWN_STATUS_LABEL.format(status=obj.status)
        if obj.status in OPEN_DISPUTE_STATUSES:
            key = "open"
        elif obj.status in (Dispute.Status.WON, Dispute.Status.PREVENTED):
            key = "won"
        elif obj.status in CLOSED_DISPUTE_STATUSES:
            key = "closed"
        else:
            key = "review"
        return key, obj.get_status_display()

    @display(description="Evidence due", ordering="evidence_due_by", label=COUNTDOWN_COLOURS)
    def due(self, obj):
        countdown = deadline_countdown(due=obj.evidence_due_by, status=obj.status)
        if countdown is None:
            return "—"
        key, text = countdown
        when = format_datetime(obj.evidence_due_by)
        # A key outside the colours would be shown instead of the text: plain is text only.
        return (key, f"{when} · {text}") if key in COUNTDOWN_COLOURS else f"{when} · {text}"
