"""Coupons: the list (status badges, terms, usage, Stripe state), and the coupon page, form
and steps of payments/admin/coupon_views.py. Presentation only: the rules live in
payments.coupon_rules and payments.services.coupons."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Prefetch
from django.urls import path
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display

from backoffice.admin_cells import FastActionCheckboxMixin, badge, two_line, with_note
from backoffice.admin_rows import FastChangeListRowsMixin
from backoffice.changelist import ChangelistMixin, SearchSpec
from payments import coupon_rules
from payments.coupon_stats import coupons_with_usage
from payments.models import Coupon, CouponCurrency

from . import coupon_views as views


@admin.register(Coupon)
class CouponAdmin(ChangelistMixin, FastActionCheckboxMixin, FastChangeListRowsMixin, ModelAdmin):
    """Coupons, newest first, with where each stands (active, scheduled, expired, used up,
    inactive) and how often it was used."""

    list_display = [
        "code_cell",
        "terms_cell",
        "usage_cell",
        "window_cell",
        "status_cell",
        "stripe_cell",
    ]
    list_display_links = ["code_cell"]
    list_select_related = ["deactivated_by"]
    list_filter = [
        "active",
        ("kind", ChoicesDropdownFilter),
        ("stripe_state", ChoicesDropdownFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    search_spec = SearchSpec(
        ids=(("promo_", "stripe_promotion_code_id"),),
        text=("code", "name"),
        help_text="Searches: code or name (any part, any case); a whole promotion code id.",
    )
    actions = None

    # --- permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request):
        return request.user.has_perm(coupon_rules.PERM_ADD)

    def has_change_permission(self, request, obj=None):
        return False  # terms change through the coupon form (a new Stripe version), not here

    def has_delete_permission(self, request, obj=None):
        return False  # redemptions point at coupons; deactivate instead

    # --- the list ------------------------------------------------------------------------------

    def get_queryset(self, request):
        return coupons_with_usage(super().get_queryset(request)).prefetch_related(
            Prefetch("currencies", queryset=CouponCurrency.objects.order_by("currency"))
        )

    @display(description="Coupon", ordering="code")
    def code_cell(self, obj):
        return two_line(obj.code, obj.name, clip=True)

    @display(description="Terms")
    def terms_cell(self, obj):
        head, notes = views.terms_lines(obj, obj.currencies.all())
        return two_line(head, notes or obj.get_kind_display(), clip=True)

    @display(description="Used", ordering="used")
    def usage_cell(self, obj):
        limit = f" of {obj.max_redemptions}" if obj.max_redemptions else ""
        text = f"{obj.used}{limit}"
        if obj.flagged_uses:
            return with_note(text, f"{obj.flagged_uses} flagged")
        if obj.max_redemptions_per_customer:
            return with_note(text, f"{obj.max_redemptions_per_customer} per customer")
        return text

    @display(description="Valid")
    def window_cell(self, obj):
        return views.window_text(obj)

    @display(description="Status")
    def status_cell(self, obj):
        label, colour = views.status_badge(obj, used=obj.used)
        return badge(label, colour)

    @display(description="Stripe", ordering="stripe_state")
    def stripe_cell(self, obj):
        return badge(obj.get_stripe_state_display(), views.STRIPE_COLOURS.get(obj.stripe_state))

    # --- pages ----------------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        return views.CouponFormView.as_view(model_admin=self)(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return views.CouponPageView.as_view(model_admin=self)(request, object_id)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/edit/",
                wrap(views.CouponFormView.as_view(model_admin=self)),
                name="payments_coupon_edit",
            ),
            path(
                "<int:pk>/deactivate/",
                wrap(views.CouponDeactivateView.as_view()),
                name="payments_coupon_deactivate",
            ),
            path(
                "<int:pk>/push/",
                wrap(views.CouponPushView.as_view()),
                name="payments_coupon_push",
            ),
            path(
                "<int:pk>/redemptions.csv",
                wrap(views.CouponRedemptionsCsvView.as_view()),
                name="payments_coupon_redemptions_csv",
            ),
            *super().get_urls(),
        ]
