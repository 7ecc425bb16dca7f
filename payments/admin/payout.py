"""The payouts queue and the payout runs.

Presentation only: every step that moves money is a POST and the rules live in
payments.services.payouts (asked again there under the row lock):
- bulk "Approve" / "Cancel" are changelist actions with an intermediate page that shows each
  selected payout, whether it would be refused, and the totals per currency; a note (or a
  reason) is required before anything changes;
- a payout's page carries small forms posting to <pk>/approve/, <pk>/cancel/, <pk>/mark-paid/
  (bank transfers) and <pk>/reverse/ (paid Connect transfers) (payout_views.py): GET answers
  405, staff without the permission get 403;
- "New manual payout" (<changelist>/new/?instructor=<id>) is a GET form that POSTs to itself;
- the bank-transfer file (CSV) is a bulk action for selected payouts, and a download on a run.
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
from backoffice.admin_rows import FastChangeListRowsMixin
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.pagination import EstimatedCountPaginator
from payments.models import Payout

from . import payout_views as views
from .display import money
from .filters import CreatedDateRangeFilter, CurrencyFilter

STATUS_COLOURS = {
    Payout.Status.PENDING: "warning",
    Payout.Status.APPROVED: "info",
    Payout.Status.PROCESSING: "info",
    Payout.Status.PAID: "success",
    Payout.Status.FAILED: "danger",
    Payout.Status.CANCELED: "",
}

# Saved views of the queue, shown as tabs above it: (label, query string). The sidebar's
# "Payouts" opens on the first (tests/payments/test_payout_admin.py holds them equal).
PAYOUT_TABS = [
    ("To approve", "status__exact=pending"),
    ("To pay by bank", "method__exact=bank_transfer&status__exact=approved"),
    ("Processing", "status__in=approved,processing"),
    ("Failed", "status__exact=failed"),
    ("All", ""),
]


BADGE_MAX = 999


def _status_note(obj: Payout) -> str:
    """The line under a payout's status: why it failed or was canceled, the bank reference it
    was paid with, or who approved it."""
    if obj.status == Payout.Status.FAILED and (obj.failure_message or obj.failure_code):
        return Truncator(obj.failure_message or obj.failure_code).chars(90)
    if obj.status == Payout.Status.CANCELED and obj.cancel_reason:
        return Truncator(obj.cancel_reason).chars(90)
    if obj.status == Payout.Status.PAID and obj.bank_reference:
        return f"bank ref. {obj.bank_reference}"
    if obj.approved_by_id:
        return f"approved by {obj.approved_by.get_username()}"
    return ""


def pending_payouts_badge(request) -> str:
    """Sidebar badge: payouts waiting for approval ("999+" above BADGE_MAX), or "" when none.
    One COUNT over at most BADGE_MAX + 1 rows of the (status, created_at) index."""
    if not request.user.has_perm("payments.view_payout"):
        return ""
    count = (
        Payout.objects.filter(status=Payout.Status.PENDING).values("id")[: BADGE_MAX + 1].count()
    )
    if count > BADGE_MAX:
        return f"{BADGE_MAX}+"
    return str(count) if count else ""


def tab_active(request, query: str) -> bool:
    """True when the list shows exactly the filters of `query` (page, order, search aside)."""
    current = sorted(
        (key, value)
        for key, value in request.GET.items()
        if key not in ("p", "o", "q", "e", "_changelist_filters")
    )
    wanted = sorted(tuple(part.split("=", 1)) for part in query.split("&") if part)
    return current == wanted


@admin.register(Payout)
class PayoutAdmin(ChangelistMixin, FastActionCheckboxMixin, FastChangeListRowsMixin, ModelAdmin):
    """Payouts to instructors, newest first; the tabs are the work (to approve, to pay by
    bank, processing, failed)."""

    # Chosen to fit 1280 px with the sidebar open: the method under the number, the e-mail
    # under the name, what was pulled back under the amount, the failure or who approved under
    # the status, the run or the requester under the date.
    list_display = [
        "payout_cell",
        "instructor_cell",
        "amount_cell",
        "status_cell",
        "created_cell",
    ]
    list_display_links = ["payout_cell"]
    list_select_related = ["instructor", "requested_by", "approved_by"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("method", ChoicesDropdownFilter),
        CurrencyFilter,
        ("source", ChoicesDropdownFilter),
        ("created_at", CreatedDateRangeFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    list_max_show_all = 500
    ordering = ["-created_at", "-id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_spec = SearchSpec(
        ids=(
            ("tr_", "stripe_transfer_id"),
            ("acct_", "instructor__stripe_account_id"),
        ),
        text=("instructor__name", "instructor__email"),
        number="pk",
        help_text=(
            "Searches: payout number (#12); instructor name or e-mail (any part, any case); a "
            "whole Stripe transfer id (tr_) or connected account id (acct_) in any case."
        ),
    )
    list_before_template = "payments/admin/payout_tabs.html"
    change_form_outer_before_template = "payments/admin/payout_page_tools.html"
    actions = ["bulk_approve", "bulk_cancel", "download_bank_file"]

    fieldsets = [
        (
            "Payout",
            {
                "fields": [
                    "status_detail",
                    "instructor_link",
                    "amount_cell",
                    "method",
                    "source",
                    "run_link",
                    "destination_account",
                    "bank_account",
                    "note",
                ]
            },
        ),
        (
            "Decision",
            {
                "fields": [
                    "requested_by",
                    "created_at",
                    "approved_by",
                    "approved_at",
                    "approval_note",
                    "canceled_by",
                    "canceled_at",
                    "cancel_reason",
                ]
            },
        ),
        (
            "Payment",
            {
                "fields": [
                    "idempotency_key",
                    "transfer_link",
                    "attempts",
                    "processing_started_at",
                    "paid_at",
                    "bank_reference",
                    "paid_by",
                    "failed_at",
                    "failure_code",
                    "failure_message",
                    "reversed_cell",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status_detail",
        "instructor_link",
        "amount_cell",
        "method",
        "source",
        "run_link",
        "destination_account",
        "bank_account",
        "note",
        "requested_by",
        "created_at",
        "approved_by",
        "approved_at",
        "approval_note",
        "canceled_by",
        "canceled_at",
        "cancel_reason",
        "idempotency_key",
        "transfer_link",
        "attempts",
        "processing_started_at",
        "paid_at",
        "bank_reference",
        "paid_by",
        "failed_at",
        "failure_code",
        "failure_message",
        "reversed_cell",
    ]

    # --- permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request):
        # The add page is the manual payout form (payout_views.ManualPayoutView), which calls
        # payments.services.payouts.payout_manual_create.
        return request.user.has_perm(views.PERM_ADD)

    def has_change_permission(self, request, obj=None):
        return False  # decisions are actions, never field edits

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request, obj=None):
        return request.user.has_perm(views.PERM_APPROVE)

    def has_bank_file_permission(self, request, obj=None):
        return request.user.has_perm(views.PERM_BANK_FILE)

    # --- the list -------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "payout_tabs": [
                (label, query, tab_active(request, query)) for label, query in PAYOUT_TABS
            ],
        }
        return super().changelist_view(request, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        return views.ManualPayoutView.as_view(model_admin=self)(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        payout = (
            Payout.objects.select_related("instructor").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        extra = views.page_tools_context(request, payout) if payout is not None else {}
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
                wrap(views.PayoutStepView.as_view(model_admin=self, step=step)),
                name=f"payments_payout_{step.replace('-', '_')}",
            )
            for step in views.STEPS
        ]
        return [*steps, *super().get_urls()]

    # --- bulk actions ---------------------------------------------------------------------------

    @action(description="Approve selected payouts", permissions=["approve"])
    def bulk_approve(self, request, queryset):
        return views.bulk_decision(self, request, queryset, decision=views.APPROVE)

    @action(description="Cancel selected payouts", permissions=["approve"])
    def bulk_cancel(self, request, queryset):
        return views.bulk_decision(self, request, queryset, decision=views.CANCEL)

    @action(description="Download bank-transfer file (CSV)", permissions=["bank_file"])
    def download_bank_file(self, request, queryset):
        return views.bank_file_response(request, queryset, name="selected")

    # --- cells ----------------------------------------------------------------------------------

    @display(description="Payout", ordering="id")
    def payout_cell(self, obj):
        kind = obj.get_method_display()
        if obj.source == Payout.Source.MANUAL:
            kind = f"{kind} · manual"
        return two_line(f"#{obj.pk}", kind, clip=True)

    @display(description="Instructor", ordering="instructor__name")
    def instructor_cell(self, obj):
        return two_line(obj.instructor.name, obj.instructor.email or "—", clip=True)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        amount = money(obj.amount, obj.currency)
        if obj.amount_reversed:
            return with_note(amount, f"{money(obj.amount_reversed, obj.currency)} reversed")
        return amount

    @display(description="Status", ordering="status")
    def status_cell(self, obj):
        note = _status_note(obj)
        cell = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        return with_note(cell, note, clip=True) if note else cell

    @display(description="Status")
    def status_detail(self, obj):
        # The page has room: the whole note, uncut.
        note = _status_note(obj)
        cell = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        return with_note(cell, note) if note else cell

    @display(description="Created", ordering="created_at")
    def created_cell(self, obj):
        if obj.run_id:
            origin = f"run #{obj.run_id}"
        elif obj.requested_by_id:
            origin = f"by {obj.requested_by.get_username()}"
        else:
            origin = obj.get_source_display()
        return two_line(format_datetime(obj.created_at), origin, clip=True)

    @display(description="Instructor")
    def instructor_link(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a> {}',
            reverse("admin:payments_instructor_change", args=[obj.instructor_id]),
            obj.instructor.name,
            obj.instructor.email,
        )

    @display(description="Run")
    def run_link(self, obj):
        if not obj.run_id:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">Payout run #{}</a>',
            reverse("admin:payments_payoutrun_change", args=[obj.run_id]),
            obj.run_id,
        )

    @display(description="Transfer")
    def transfer_link(self, obj):
        # The mirror of the transfer (and its reversals), found by its id.
        if not obj.stripe_transfer_id:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}?q={}">{}</a>',
            reverse("admin:payments_transfer_changelist"),
            obj.stripe_transfer_id,
            obj.stripe_transfer_id,
        )

    @display(description="Reversed")
    def reversed_cell(self, obj):
        return money(obj.amount_reversed, obj.currency)
