"""Stripe Connect transfers as mirrored by the sync and the webhooks (payments.sync.
upsert_transfers). Read-only: transfers are made by payouts (payments/services/payouts.py)
and pulled back by their reversal form; this list is where staff check what Stripe holds."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import (
    RangeDateTimeFilter,
)
from unfold.decorators import display

from backoffice.admin_cells import badge, two_line
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.pagination import EstimatedCountPaginator
from payments.admin.display import external_link, money
from payments.models import Payout, Transfer, TransferReversal
from payments.stripe_links import stripe_dashboard_url

# Shown in the payout cell of a transfer none of our payouts made (one made in Stripe's
# dashboard, or another platform flow).
NOT_OURS = "Not one of our payouts"


class CurrencyFilter(admin.SimpleListFilter):
    """The currencies transfers were made in (a short list: one query)."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        currencies = (
            Transfer.objects.order_by("currency").values_list("currency", flat=True).distinct()
        )
        return [(c, c.upper()) for c in currencies]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(currency=self.value())
        return queryset


class LinkFilter(admin.SimpleListFilter):
    title = "made by"
    parameter_name = "made_by"

    def lookups(self, request, model_admin):
        return [("payout", "Our payouts"), ("other", "Other transfers")]

    def queryset(self, request, queryset):
        if self.value() == "payout":
            return queryset.filter(payout__isnull=False)
        if self.value() == "other":
            return queryset.filter(payout__isnull=True)
        return queryset


class TransferReversalInline(TabularInline):
    model = TransferReversal
    show_title = False
    extra = 0
    can_delete = False
    fields = ["stripe_id", "amount_cell", "created_cell", "metadata"]
    readonly_fields = fields
    ordering = ["-created", "-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @display(description="Amount")
    def amount_cell(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Reversed at")
    def created_cell(self, obj):
        return format_datetime(obj.created)


@admin.register(Transfer)
class TransferAdmin(ChangelistMixin, ModelAdmin):
    list_display = [
        "transfer_cell",
        "instructor_cell",
        "payout_cell",
        "amount_cell",
        "reversed_cell",
        "created_cell",
    ]
    list_display_links = ["transfer_cell"]
    list_select_related = ["instructor", "payout"]
    list_filter = [
        CurrencyFilter,
        LinkFilter,
        "reversed",
        ("instructor", admin.RelatedOnlyFieldListFilter),
        ("created", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    search_spec = SearchSpec(
        ids=(("tr_", "stripe_id"), ("acct_", "destination")),
        text=("instructor__name", "instructor__email"),
        help_text=(
            "Searches: instructor name or e-mail (any part, any case); a whole Stripe transfer "
            "id (tr_) or connected account id (acct_) in any case."
        ),
    )
    ordering = ["-created", "-id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    inlines = [TransferReversalInline]
    fields = [
        "stripe_id",
        "dashboard_link",
        "instructor",
        "payout",
        "destination",
        "amount_cell",
        "reversed_cell",
        "transfer_group",
        "description",
        "metadata",
        "livemode",
        "created_cell",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Transfer", ordering="stripe_id")
    def transfer_cell(self, obj):
        return two_line(obj.stripe_id, obj.destination, clip=True)

    @display(description="Instructor", ordering="instructor__name")
    def instructor_cell(self, obj):
        if obj.instructor is None:
            return "—"
        return two_line(obj.instructor.name, obj.instructor.email, clip=True)

    @display(description="Payout", ordering="payout")
    def payout_cell(self, obj):
        if obj.payout is None:
            return badge(NOT_OURS, "info")
        if not admin.site.is_registered(Payout):
            return str(obj.payout)
        url = reverse("admin:payments_payout_change", args=[obj.payout_id])
        return format_html('<a href="{}">{}</a>', url, obj.payout)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Reversed", ordering="amount_reversed")
    def reversed_cell(self, obj):
        if not obj.amount_reversed:
            return "—"
        text = money(obj.amount_reversed, obj.currency)
        return badge(f"{text} (all)" if obj.reversed else str(text), "warning")

    @display(description="Created", ordering="created")
    def created_cell(self, obj):
        return format_datetime(obj.created)

    @display(description="At Stripe")
    def dashboard_link(self, obj):
        return external_link(
            stripe_dashboard_url("transfer", obj.stripe_id, livemode=obj.livemode),
            "Open in Stripe",
        )
