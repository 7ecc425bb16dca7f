"""Saved payment methods: the expiry filter and badge of the payment methods list, the
method's page actions (make default, detach: payments/admin/billing_action_views.py) and
the customer page's section (SavedPaymentMethodInline)."""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.decorators import display
from unfold.utils import display_for_label

from payments import card_expiry
from payments.models import BillingAction, PaymentMethod
from payments.services.billing_actions import PERM_PAYMENT_METHOD

from .billing_action_views import (
    PAYMENT_METHOD_PAGES,
    BillingActionAdminMixin,
    action_url,
    offered_actions,
)

EXPIRY_LABELS = {
    card_expiry.EXPIRED: "Expired",
    card_expiry.THIS_MONTH: "Expires this month",
    card_expiry.VALID: "Valid",
}
EXPIRY_COLOURS = {card_expiry.EXPIRED: "danger", card_expiry.THIS_MONTH: "warning"}


class CardExpiryFilter(admin.SimpleListFilter):
    """Expired cards and cards in their last month, against today in the site's time zone
    (payments.card_expiry: the SQL and the badge share the rule)."""

    title = "card expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [(state, EXPIRY_LABELS[state]) for state in card_expiry.STATES]

    def queryset(self, request, queryset):
        if self.value() in card_expiry.STATES:
            return queryset.filter(card_expiry.card_expiry_q(self.value()))
        return queryset


def expiry_cell(method: PaymentMethod):
    """'12/2030', with a badge when the card has expired or expires this month."""
    if not (method.card_exp_month and method.card_exp_year):
        return "—"
    text = f"{method.card_exp_month:02d}/{method.card_exp_year}"
    state = card_expiry.card_expiry_state(method.card_exp_month, method.card_exp_year)
    if state not in EXPIRY_COLOURS:
        return text
    return display_for_label((state, f"{text} · {EXPIRY_LABELS[state]}"), "-", EXPIRY_COLOURS)


class SavedPaymentMethodAdminMixin(BillingActionAdminMixin):
    """The payment method's page: make default / detach (for staff with the permission) and
    the changes made so far."""

    billing_action_pages = PAYMENT_METHOD_PAGES
    billing_action_permission = PERM_PAYMENT_METHOD
    change_form_outer_before_template = "payments/admin/billing_actions_page_tools.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        method = (
            PaymentMethod.objects.select_related("customer").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        if method is not None:
            extra_context = {
                **(extra_context or {}),
                "billing_actions": offered_actions(request, method),
                "billing_history": BillingAction.objects.filter(payment_method=method)
                .select_related("requested_by")
                .order_by("-created_at", "-id")[:20],
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def billing_action_facts(self, target):
        return [
            ("Customer", str(target.customer or "—")),
            ("Method", str(target)),
            ("Expires", expiry_cell(target)),
            ("Default", "Yes" if target.is_default else "No"),
        ]


class SavedPaymentMethodInline(TabularInline):
    """The customer page's saved payment methods, with make default / detach for staff who
    may use them."""

    model = PaymentMethod
    verbose_name_plural = "Saved payment methods"
    show_title = False
    extra = 0
    can_delete = False
    base_fields = ["method_link", "method_cell", "expiry", "is_default"]

    def get_fields(self, request, obj=None):
        if request.user.has_perm(PERM_PAYMENT_METHOD):
            return [*self.base_fields, "actions_cell"]
        return list(self.base_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @display(description="Payment method")
    def method_link(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_paymentmethod_change", args=[obj.pk]),
            obj.stripe_id,
        )

    @display(description="Method")
    def method_cell(self, obj):
        return str(obj)

    @display(description="Expires")
    def expiry(self, obj):
        return expiry_cell(obj)

    @display(description="Actions")
    def actions_cell(self, obj):
        """Make default (unless it is the default, or an expired card) and detach."""
        state = card_expiry.card_expiry_state(obj.card_exp_month, obj.card_exp_year)
        pages = [
            page
            for page in PAYMENT_METHOD_PAGES
            if page.kind != BillingAction.Kind.SET_DEFAULT
            or not (obj.is_default or state == card_expiry.EXPIRED)
        ]
        return render_to_string(
            "payments/admin/billing_action_links.html",
            {"links": [(page, action_url(obj, page, back="customer")) for page in pages]},
        )
