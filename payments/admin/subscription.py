"""Subscriptions: the list (status badges, filters, search), the page (with cancel at period
end / resume / cancel now, payments/admin/billing_action_views.py) and the customer page's
section (CustomerSubscriptionInline). Read-only: the mirror is written by payments.sync."""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.utils import display_for_label

from backoffice.admin_cells import two_line
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.pagination import EstimatedCountPaginator
from payments.models import BillingAction, Subscription
from payments.services.billing_actions import PERM_SUBSCRIPTION
from payments.stripe_links import stripe_dashboard_url

from .billing_action_views import (
    SUBSCRIPTION_PAGES,
    BillingActionAdminMixin,
    action_url,
    offered_actions,
)
from .display import UNKNOWN_STATUS_LABEL, customer_two_line, external_link, money
from .filters import CurrencyFilter

Status = Subscription.Status

# Unfold label colours: what needs a look is red (past due, unpaid) or amber.
SUBSCRIPTION_STATUS_COLOURS = {
    Status.ACTIVE: "success",
    Status.TRIALING: "info",
    Status.PAST_DUE: "danger",
    Status.UNPAID: "danger",
    Status.INCOMPLETE: "warning",
    Status.PAUSED: "warning",
    Status.INCOMPLETE_EXPIRED: "primary",
    Status.CANCELED: "primary",
    "unknown": "warning",
    "ending": "warning",
}
# Stripe's invoice statuses.
INVOICE_STATUS_COLOURS = {
    "paid": "success",
    "open": "danger",
    "draft": "info",
    "uncollectible": "danger",
    "void": "primary",
}
INVOICE_STATUSES = [
    ("paid", "Paid"),
    ("open", "Open (not paid yet)"),
    ("draft", "Draft"),
    ("uncollectible", "Uncollectible"),
    ("void", "Void"),
]
INTERVAL_WORDS = {"day": "day", "week": "week", "month": "month", "year": "year"}
ENDS_LABEL = "Ends {when}"
ENDED_LABEL = "Ended {when}"


def price_text(sub: Subscription) -> str:
    """'$49.00 / month', '€120.00 every 3 months'."""
    amount = money(sub.amount, sub.currency) if sub.currency else "—"
    word = INTERVAL_WORDS.get(sub.interval, sub.interval)
    if not word:
        return amount
    if sub.interval_count > 1:
        return format_html("{} every {} {}s", amount, sub.interval_count, word)
    return format_html("{} / {}", amount, word)


def plan_text(sub: Subscription) -> str:
    name = sub.plan_name or sub.product_id or sub.price_id or "—"
    if sub.items_count > 1:
        return f"{name} (+{sub.items_count - 1} more)"
    return name


def status_badges(sub: Subscription):
    """The status badge (an unknown status raw, in amber), and "Ends <date>" beside it while
    a cancellation at period end is pending."""
    known = sub.status in Status.values
    badge = display_for_label(
        (
            sub.status if known else "unknown",
            sub.get_status_display() if known else UNKNOWN_STATUS_LABEL.format(status=sub.status),
        ),
        "-",
        SUBSCRIPTION_STATUS_COLOURS,
    )
    if sub.cancel_at_period_end and not sub.is_final:
        when = format_datetime(sub.cancel_at or sub.current_period_end)
        ending = display_for_label(
            ("ending", ENDS_LABEL.format(when=when)), "-", SUBSCRIPTION_STATUS_COLOURS
        )
        return format_html(
            '<span class="flex flex-wrap gap-1" data-testid="subscription-status">{}{}</span>',
            badge,
            ending,
        )
    return format_html('<span data-testid="subscription-status">{}</span>', badge)


def period_end_text(sub: Subscription) -> str:
    """When the current period ends; for an ended subscription, when it ended."""
    if sub.is_final and sub.ended_at:
        return ENDED_LABEL.format(when=format_datetime(sub.ended_at))
    return format_datetime(sub.current_period_end)


def invoice_badge(sub: Subscription):
    if not sub.latest_invoice_status:
        return "—"
    return display_for_label(
        (sub.latest_invoice_status, sub.latest_invoice_status.replace("_", " ").capitalize()),
        "-",
        INVOICE_STATUS_COLOURS,
    )


class LatestInvoiceStatusFilter(admin.SimpleListFilter):
    title = "latest invoice"
    parameter_name = "latest_invoice"

    def lookups(self, request, model_admin):
        return INVOICE_STATUSES

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(latest_invoice_status=self.value())
        return queryset


@admin.register(Subscription)
class SubscriptionAdmin(ChangelistMixin, BillingActionAdminMixin, ModelAdmin):
    list_display = [
        "stripe_id",
        "customer_cell",
        "plan_cell",
        "status_cell",
        "period_end",
        "invoice_cell",
        "created",
    ]
    list_select_related = ["customer"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        "cancel_at_period_end",
        LatestInvoiceStatusFilter,
        "interval",
        CurrencyFilter,
    ]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ["-created", "-id"]
    search_spec = SearchSpec(
        ids=(("sub_", "stripe_id"), ("cus_", "customer__stripe_id")),
        text=("customer__name", "customer__email"),
        help_text=(
            "Searches: customer name or e-mail (any part, any case); a whole Stripe "
            "subscription id (sub_) or customer id (cus_) in any case."
        ),
    )
    billing_action_pages = SUBSCRIPTION_PAGES
    billing_action_permission = PERM_SUBSCRIPTION
    change_form_outer_before_template = "payments/admin/billing_actions_page_tools.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "customer_link",
                    "status_cell",
                    "plan_name_cell",
                    "price_cell",
                    "current_period",
                    "trial_end",
                ]
            },
        ),
        (
            "Cancellation",
            {
                "fields": [
                    "cancel_at_period_end",
                    "cancel_at",
                    "canceled_at",
                    "ended_at",
                    "cancellation_reason",
                    "cancellation_comment",
                    "cancellation_feedback",
                ]
            },
        ),
        (
            "Latest invoice",
            {"fields": ["latest_invoice_id", "invoice_cell", "invoice_due", "invoice_paid"]},
        ),
        (
            "Stripe",
            {
                "fields": [
                    "stripe_id",
                    "stripe_link",
                    "price_id",
                    "product_id",
                    "default_payment_method_id",
                    "livemode",
                    "created",
                    "metadata",
                ]
            },
        ),
    ]
    readonly_fields = [
        "customer_link",
        "status_cell",
        "plan_name_cell",
        "price_cell",
        "current_period",
        "trial_end",
        "cancel_at_period_end",
        "cancel_at",
        "canceled_at",
        "ended_at",
        "cancellation_reason",
        "cancellation_comment",
        "cancellation_feedback",
        "latest_invoice_id",
        "invoice_cell",
        "invoice_due",
        "invoice_paid",
        "stripe_id",
        "stripe_link",
        "price_id",
        "product_id",
        "default_payment_method_id",
        "livemode",
        "created",
        "metadata",
    ]

    def has_add_permission(self, request):
        return False  # subscriptions are made at Stripe and mirrored here

    def has_change_permission(self, request, obj=None):
        return False  # every field mirrors Stripe; changes go through the actions

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sub = (
            Subscription.objects.select_related("customer").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        if sub is not None:
            extra_context = {
                **(extra_context or {}),
                "billing_actions": offered_actions(request, sub),
                "billing_history": BillingAction.objects.filter(subscription=sub)
                .select_related("requested_by")
                .order_by("-created_at", "-id")[:20],
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def billing_action_facts(self, target):
        return [
            ("Customer", str(target.customer or "—")),
            ("Plan", plan_text(target)),
            ("Price", price_text(target)),
            ("Status", status_badges(target)),
            ("Current period ends", format_datetime(target.current_period_end)),
            ("Latest invoice", invoice_badge(target)),
        ]

    @display(description="Customer", ordering="customer__email")
    def customer_cell(self, obj):
        return customer_two_line(obj.customer)

    @display(description="Customer")
    def customer_link(self, obj):
        if obj.customer_id is None:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_customer_change", args=[obj.customer_id]),
            obj.customer,
        )

    @display(description="Plan", ordering="plan_name")
    def plan_cell(self, obj):
        return two_line(plan_text(obj), price_text(obj))

    @display(description="Plan")
    def plan_name_cell(self, obj):
        return plan_text(obj)

    @display(description="Price", ordering="amount")
    def price_cell(self, obj):
        return price_text(obj)

    @display(description="Status", ordering="status")
    def status_cell(self, obj):
        return status_badges(obj)

    @display(description="Period ends", ordering="current_period_end")
    def period_end(self, obj):
        return period_end_text(obj)

    @display(description="Current period")
    def current_period(self, obj):
        start, end = obj.current_period_start, obj.current_period_end
        return f"{format_datetime(start)} → {format_datetime(end)}"

    @display(description="Latest invoice", ordering="latest_invoice_status")
    def invoice_cell(self, obj):
        return invoice_badge(obj)

    @display(description="Amount due")
    def invoice_due(self, obj):
        if obj.latest_invoice_amount_due is None:
            return "—"
        return money(obj.latest_invoice_amount_due, obj.currency)

    @display(description="Amount paid")
    def invoice_paid(self, obj):
        if obj.latest_invoice_amount_paid is None:
            return "—"
        return money(obj.latest_invoice_amount_paid, obj.currency)

    @display(description="Stripe dashboard")
    def stripe_link(self, obj):
        return external_link(
            stripe_dashboard_url("subscription", obj.stripe_id, livemode=obj.livemode),
            obj.stripe_id,
        )


class CustomerSubscriptionInline(TabularInline):
    """The customer page's subscriptions, newest first, with the actions (for staff who may
    take them) linking to their confirmation pages."""

    model = Subscription
    fk_name = "customer"
    verbose_name_plural = "Subscriptions"
    show_title = False
    extra = 0
    can_delete = False
    ordering = ["-created", "-id"]
    base_fields = [
        "subscription_link",
        "plan_cell",
        "price_cell",
        "status_cell",
        "period_end",
        "invoice_cell",
    ]

    def get_fields(self, request, obj=None):
        if request.user.has_perm(PERM_SUBSCRIPTION):
            return [*self.base_fields, "actions_cell"]
        return list(self.base_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @display(description="Subscription")
    def subscription_link(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_subscription_change", args=[obj.pk]),
            obj.stripe_id,
        )

    @display(description="Plan")
    def plan_cell(self, obj):
        return plan_text(obj)

    @display(description="Price")
    def price_cell(self, obj):
        return price_text(obj)

    @display(description="Status")
    def status_cell(self, obj):
        return status_badges(obj)

    @display(description="Period ends")
    def period_end(self, obj):
        return period_end_text(obj)

    @display(description="Latest invoice")
    def invoice_cell(self, obj):
        return invoice_badge(obj)

    @display(description="Actions")
    def actions_cell(self, obj):
        """Links to the actions the subscription's state allows (the user may take them:
        the column is only there for staff with the permission)."""
        if obj.is_final:
            return "—"
        pages = [
            page
            for page in SUBSCRIPTION_PAGES
            if (page.kind == BillingAction.Kind.RESUME) == obj.cancel_at_period_end
            or page.kind == BillingAction.Kind.CANCEL_NOW
        ]
        return render_to_string(
            "payments/admin/billing_action_links.html",
            {"links": [(page, action_url(obj, page, back="customer")) for page in pages]},
        )
