"""The customer adjustments queue and each adjustment's page.

Presentation only: every step that changes something is a POST and the rules live in
payments.customer_adjustment_rules (asked again by payments.services.customer_adjustments
under the row lock):
- tabs Pending / Approved / Rejected / Failed / All above the list;
- bulk "Approve" / "Reject" are changelist actions with an intermediate page that shows each
  selected adjustment, whether it would be refused, and the totals per currency (hours apart);
  a note is required to reject;
- an adjustment's page carries small forms posting to <pk>/approve/ and <pk>/reject/
  (customer_adjustment_views.py): GET answers 405, staff without the permission get 403;
- the request form is the customer page's panel (payments/templatetags/customer_adjustments.py)
  and the "add" page (?customer=<id>), both posting to the add URL.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from backoffice.admin_cells import FastActionCheckboxMixin, badge, two_line, with_note
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.pagination import EstimatedCountPaginator
from payments import customer_adjustment_rules as rules
from payments.models import CustomerAdjustment

from . import customer_adjustment_views as views
from .display import customer_two_line
from .filters import CurrencyFilter

STATUS_COLOURS = {
    CustomerAdjustment.Status.PENDING: "warning",
    CustomerAdjustment.Status.APPROVED: "info",
    CustomerAdjustment.Status.APPLYING: "info",
    CustomerAdjustment.Status.APPLIED: "success",
    CustomerAdjustment.Status.REJECTED: "",
    CustomerAdjustment.Status.FAILED: "danger",
}

# Saved views of the queue, shown as tabs above it: (label, query string). The sidebar's
# "Customer adjustments" opens on the first.
ADJUSTMENT_TABS = [
    ("Pending", "status__exact=pending"),
    ("Approved", "status__in=approved,applying,applied"),
    ("Rejected", "status__exact=rejected"),
    ("Failed", "status__exact=failed"),
    ("All", ""),
]

NOTE_NEEDS_SENIOR = "needs a senior approver"
BADGE_MAX = 999


def tab_active(request, query: str) -> bool:
    """True when the list shows exactly the filters of `query` (page, order, search aside)."""
    current = sorted(
        (key, value)
        for key, value in request.GET.items()
        if key not in ("p", "o", "q", "e", "_changelist_filters")
    )
    wanted = sorted(tuple(part.split("=", 1)) for part in query.split("&") if part)
    return current == wanted


def pending_adjustments_badge(request) -> str:
    """Sidebar badge: adjustments waiting for a decision ("999+" above BADGE_MAX), or "".
    One COUNT over at most BADGE_MAX + 1 rows of the (status, created_at) index."""
    if not request.user.has_perm(rules.PERM_VIEW):
        return ""
    count = (
        CustomerAdjustment.objects.filter(status=CustomerAdjustment.Status.PENDING)
        .values("id")[: BADGE_MAX + 1]
        .count()
    )
    if count > BADGE_MAX:
        return f"{BADGE_MAX}+"
    return str(count) if count else ""


def status_note(obj: CustomerAdjustment) -> str:
    """The line under an adjustment's status: why it needs a senior, why it failed or was
    rejected, or who decided it."""
    if obj.status == CustomerAdjustment.Status.PENDING:
        return NOTE_NEEDS_SENIOR if rules.needs_senior(obj) else ""
    if obj.status == CustomerAdjustment.Status.FAILED and obj.failure_message:
        return Truncator(obj.failure_message).chars(90)
    if obj.status == CustomerAdjustment.Status.REJECTED and obj.decision_note:
        return Truncator(obj.decision_note).chars(90)
    if obj.decided_by_id:
        return f"by {obj.decided_by.get_username()}"
    return ""


@admin.register(CustomerAdjustment)
class CustomerAdjustmentAdmin(ChangelistMixin, FastActionCheckboxMixin, ModelAdmin):
    """Manual credits and debits to customers, newest first; the tabs are the work."""

    list_display = [
        "adjustment_cell",
        "customer_cell",
        "change_cell",
        "status_cell",
        "requested_cell",
    ]
    list_display_links = ["adjustment_cell"]
    list_select_related = ["customer", "requested_by", "decided_by"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("unit", ChoicesDropdownFilter),
        ("direction", ChoicesDropdownFilter),
        CurrencyFilter,
    ]
    list_filter_submit = True
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_spec = SearchSpec(
        ids=(
            ("cus_", "customer__stripe_id"),
            ("cbtxn_", "stripe_balance_transaction_id"),
        ),
        text=("customer__name", "customer__email"),
        number="pk",
        help_text=(
            "Searches: adjustment number (#12); customer name or e-mail (any part, any case); "
            "a whole Stripe customer id (cus_) or balance transaction id (cbtxn_)."
        ),
    )
    list_before_template = "payments/admin/customer_adjustment_tabs.html"
    change_form_outer_before_template = "payments/admin/customer_adjustment_page_tools.html"
    actions = ["bulk_approve", "bulk_reject"]

    fieldsets = [
        (
            "Adjustment",
            {"fields": ["status_detail", "customer_link", "change_cell", "reason"]},
        ),
        (
            "Decision",
            {
                "fields": [
                    "requested_by",
                    "created_at",
                    "decided_by",
                    "decided_at",
                    "decision_note",
                ]
            },
        ),
        (
            "Applied",
            {
                "fields": [
                    "idempotency_key",
                    "applied_at",
                    "attempts",
                    "stripe_balance_transaction_id",
                    "ending_balance_cell",
                    "balance_entry_link",
                    "failure_code",
                    "failure_message",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status_detail",
        "customer_link",
        "change_cell",
        "reason",
        "requested_by",
        "created_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "idempotency_key",
        "applied_at",
        "attempts",
        "stripe_balance_transaction_id",
        "ending_balance_cell",
        "balance_entry_link",
        "failure_code",
        "failure_message",
    ]

    # --- permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request):
        # The add page is the request form (customer_adjustment_views.RequestView).
        return request.user.has_perm(rules.PERM_REQUEST)

    def has_change_permission(self, request, obj=None):
        return False  # decisions are actions, never field edits

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request, obj=None):
        return request.user.has_perm(rules.PERM_APPROVE)

    # --- pages ---------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "adjustment_tabs": [
                (label, query, tab_active(request, query)) for label, query in ADJUSTMENT_TABS
            ],
        }
        return super().changelist_view(request, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        return views.RequestView.as_view(model_admin=self)(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        adjustment = (
            CustomerAdjustment.objects.select_related("customer").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        extra = views.page_tools_context(request, adjustment) if adjustment is not None else {}
        extra_context = {
            **(extra_context or {}),
            **extra,
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        steps = [
            path(
                f"<int:pk>/{step}/",
                wrap(views.DecisionView.as_view(model_admin=self, step=step)),
                name=f"payments_customeradjustment_{step}",
            )
            for step in views.STEPS
        ]
        return [*steps, *super().get_urls()]

    # --- bulk actions ---------------------------------------------------------------------------

    @action(description="Approve selected adjustments", permissions=["approve"])
    def bulk_approve(self, request, queryset):
        return views.bulk_decision(self, request, queryset, decision=views.APPROVE)

    @action(description="Reject selected adjustments", permissions=["approve"])
    def bulk_reject(self, request, queryset):
        return views.bulk_decision(self, request, queryset, decision=views.REJECT)

    # --- cells ----------------------------------------------------------------------------------

    @display(description="Adjustment", ordering="id")
    def adjustment_cell(self, obj):
        return two_line(f"#{obj.pk}", obj.reason, clip=True)

    @display(description="Customer", ordering="customer__email")
    def customer_cell(self, obj):
        return customer_two_line(obj.customer)

    @display(description="Change")
    def change_cell(self, obj):
        return with_note(views.signed_change(obj), obj.get_unit_display().lower())

    @display(description="Status", ordering="status")
    def status_cell(self, obj):
        note = status_note(obj)
        cell = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        return with_note(cell, note, clip=True) if note else cell

    @display(description="Status")
    def status_detail(self, obj):
        note = status_note(obj)
        if obj.status == CustomerAdjustment.Status.PENDING and note:
            note = rules.senior_reason(obj)  # the page has room: the whole rule
        cell = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        return with_note(cell, note) if note else cell

    @display(description="Requested", ordering="created_at")
    def requested_cell(self, obj):
        who = obj.requested_by.get_username() if obj.requested_by_id else "system"
        return two_line(format_datetime(obj.created_at), f"by {who}", clip=True)

    @display(description="Customer")
    def customer_link(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a> {}',
            views.customer_url(obj.customer_id),
            obj.customer,
            obj.customer.name,
        )

    @display(description="Customer's Stripe balance after it")
    def ending_balance_cell(self, obj):
        return views.balance_words(obj.stripe_ending_balance, obj.currency)

    @display(description="Hours ledger entry")
    def balance_entry_link(self, obj):
        if obj.balance_entry_id is None:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_studentbalance_change", args=[obj.balance_entry.balance_id]),
            obj.balance_entry,
        )
