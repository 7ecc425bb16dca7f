"""The refund queue: pending requests ranked by priority (a SQL CASE), then age.

Presentation only. Every decision goes through refunds.services, always by POST:
- bulk approve / bulk reject are changelist actions with an intermediate form (a note, or a
  rejection reason, is required before anything changes);
- the row and detail actions are GET links to a confirmation page whose form POSTs to
  `<pk>/approve/` or `<pk>/reject/` (views.py), which answer GET with 405 and staff without
  the approve permission with 403.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import Truncator
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import (
    ChoicesDropdownFilter,
    DropdownFilter,
    RelatedDropdownFilter,
)
from unfold.decorators import action, display

from backoffice.admin_cells import FastActionCheckboxMixin, two_line
from backoffice.admin_rows import FastChangeListRowsMixin
from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.guard import (
    guard_bulk_action,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from backoffice.pagination import CURSOR_VAR, KeysetPaginationMixin
from payments.admin.display import customer_label, customer_two_line
from payments.admin.filters import AmountRangeFilter, CurrencyFilter
from payments.money import format_money
from refunds import selectors
from refunds.forms import ApproveForm, BulkApproveForm, RejectForm
from refunds.models import RefundRequest
from refunds.permissions import decision_refusal
from refunds.selectors import Priority
from refunds.services import (
    AUDIT_APPROVE,
    AUDIT_REJECT,
    PERM_APPROVE,
    RefundError,
    refund_request_approve,
    refund_request_reject,
)

from . import cells, views
from .pagination import PriorityQueuePaginator

PRIORITY_COLOURS = {
    Priority.URGENT: "danger",
    Priority.HIGH: "warning",
    Priority.LARGE: "primary",
    Priority.NORMAL: "info",
    "": "info",
}
STATUS_COLOURS = {
    RefundRequest.Status.PENDING: "warning",
    RefundRequest.Status.APPROVED: "info",
    RefundRequest.Status.PROCESSING: "info",
    RefundRequest.Status.PROCESSED: "success",
    RefundRequest.Status.REJECTED: "danger",
    RefundRequest.Status.FAILED: "danger",
    RefundRequest.Status.CANCELED: "danger",
}

# Statuses whose failure_message the queue shows under the badge.
SHOW_FAILURE_STATUSES = frozenset({RefundRequest.Status.FAILED, RefundRequest.Status.CANCELED})

# Saved views of the queue, shown as tabs above it: (label, query string).
QUEUE_PRESETS = [
    ("All pending", "status__exact=pending"),
    ("Urgent pending", "status__exact=pending&priority=urgent"),
    ("High pending", "status__exact=pending&priority=high"),
    ("Large pending", "status__exact=pending&priority=large"),
    ("In flight", "status__exact=approved"),
    ("Processing", "status__exact=processing"),
    ("Failed", "status__exact=failed"),
    ("Canceled", "status__exact=canceled"),
    ("Everything", ""),
]


class PriorityFilter(DropdownFilter):
    """Filters on the same tiers as the priority annotation, but written on plain columns so
    the (status, created_at) index serves them. Unknown values are ignored (no 500)."""

    title = "priority"
    parameter_name = "priority"

    def lookups(self, request, model_admin):
        return Priority.CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        if value not in Priority.RANK:
            return queryset
        return queryset.filter(selectors.priority_q(value))


def _age(delta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {rest // 60}m"
    return f"{rest // 60}m"


@admin.register(RefundRequest)
class RefundRequestAdmin(
    KeysetPaginationMixin,
    ChangelistMixin,
    FastActionCheckboxMixin,
    FastChangeListRowsMixin,
    ModelAdmin,
):
    # Chosen to fit 1280 px with the sidebar open (tests/e2e/test_layouts.py), the decision
    # columns first: the reason under the request, the status under the priority (a priority
    # exists only while pending), who asked under the age; the payment id is on the request's
    # page and the search finds it.
    # The keyset pager's cursor is ours, not a filter (backoffice/changelist.py checks the rest).
    extra_query_params = frozenset({CURSOR_VAR})
    list_display = [
        "request_cell",
        "amount_cell",
        "priority_badge",
        "age_cell",
        "customer_cell",
        "decide_cell",
    ]
    list_display_links = ["request_cell"]
    list_select_related = ["payment", "payment__customer", "requested_by", "approved_by"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        PriorityFilter,
        ("reason", ChoicesDropdownFilter),
        ("internal_reason", ChoicesDropdownFilter),
        AmountRangeFilter,
        CurrencyFilter,
        ("requested_by", RelatedDropdownFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    list_max_show_all = 500
    paginator = PriorityQueuePaginator
    show_full_result_count = False
    search_spec = SearchSpec(
        ids=(
            ("pi_", "payment__stripe_payment_intent_id"),
            ("re_", "stripe_refund_id"),
            ("pyr_", "stripe_refund_id"),
        ),
        text=("payment__customer__name", "payment__customer__email"),
        number="pk",
        help_text=(
            "Searches: request number (#123); customer name or e-mail (any part, any case); a "
            "whole Stripe payment id (pi_) or refund id (re_) in any case."
        ),
    )
    list_before_template = "refunds/admin/queue_presets.html"
    actions = ["bulk_approve", "bulk_reject"]
    # reports/admin.py adds the exports (reports.exports.RefundExportAdminMixin).
    actions_detail = ["approve_confirm", "reject_confirm"]

    fieldsets = [
        (
            "Request",
            {
                "fields": [
                    "status",
                    "priority_text",
                    "payment_link",
                    "customer_link",
                    "amount_cell",
                    "reason",
                    "internal_reason",
                    "source",
                    "customer_note",
                    "notify_customer",
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
                    "rejected_by",
                    "rejected_at",
                    "rejection_reason",
                    "admin_notes",
                ]
            },
        ),
        (
            "Processing",
            {
                "fields": [
                    "processing_attempts",
                    "processing_started_at",
                    "processed_at",
                    "stripe_refund_id",
                    "idempotency_key",
                    "failure_message",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status",
        "priority_text",
        "payment_link",
        "customer_link",
        "amount_cell",
        "reason",
        "internal_reason",
        "source",
        "customer_note",
        "notify_customer",
        "requested_by",
        "created_at",
        "approved_by",
        "approved_at",
        "rejected_by",
        "rejected_at",
        "rejection_reason",
        "admin_notes",
        "processing_attempts",
        "processing_started_at",
        "processed_at",
        "stripe_refund_id",
        "idempotency_key",
        "failure_message",
    ]

    # --- permissions --------------------------------------------------------------------------

    def has_add_permission(self, request):
        return False  # requests start on a payment ("Request refund"), with its amount rules

    def has_change_permission(self, request, obj=None):
        return False  # decisions are actions, never field edits

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request, obj=None):
        return request.user.has_perm(PERM_APPROVE)

    def get_list_display(self, request):
        # The Approve / Reject links only for staff who may decide (the auditor reads).
        columns = list(super().get_list_display(request))
        if self.has_approve_permission(request):
            return columns
        return [column for column in columns if column != "decide_cell"]

    def get_actions_detail(self, request, object_id):
        # Approve / Reject on a request's page only while it is pending (and, through the
        # actions' permissions, only for staff who may decide).
        actions = super().get_actions_detail(request, object_id)
        pending = RefundRequest.objects.filter(
            pk=object_id if str(object_id).isdigit() else None,
            status=RefundRequest.Status.PENDING,
        ).exists()
        return actions if pending else []

    # --- queryset -----------------------------------------------------------------------------

    def get_queryset(self, request):
        # Not super(): it orders by get_ordering() before the annotations exist.
        return selectors.refund_request_queue(queryset=self.model._default_manager.all())

    def get_ordering(self, request):
        # Annotations, so not in `ordering` (the admin system check only knows fields).
        return ["priority_rank", "created_at", "id"]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "queue_presets": [
                (label, query, _preset_active(request, query)) for label, query in QUEUE_PRESETS
            ],
        }
        return super().changelist_view(request, extra_context)

    # --- URLs: the POST-only decision endpoints and the payment refund page ---------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/approve/",
                wrap(views.ApproveView.as_view(model_admin=self)),
                name="refunds_refundrequest_approve",
            ),
            path(
                "<int:pk>/reject/",
                wrap(views.RejectView.as_view(model_admin=self)),
                name="refunds_refundrequest_reject",
            ),
            path(
                "payment/<int:payment_id>/refund/",
                wrap(views.PaymentRefundView.as_view(model_admin=self)),
                name="refunds_payment_refund",
            ),
            *super().get_urls(),
        ]

    # --- row and detail actions: GET links to a confirmation page ----------------------------

    @action(
        description="Approve",
        icon="check_circle",
        url_path="confirm-approve",
        permissions=["approve"],
    )
    def approve_confirm(self, request, object_id):
        return views.decision_page(self, request, object_id, decision="approve")

    @action(description="Reject", icon="cancel", url_path="confirm-reject", permissions=["approve"])
    def reject_confirm(self, request, object_id):
        return views.decision_page(self, request, object_id, decision="reject")

    # --- bulk actions with an intermediate form -----------------------------------------------

    @action(description="Approve selected requests", permissions=["approve"])
    def bulk_approve(self, request, queryset):
        return self._bulk_decision(request, queryset, decision="approve")

    @action(description="Reject selected requests", permissions=["approve"])
    def bulk_reject(self, request, queryset):
        return self._bulk_decision(request, queryset, decision="reject")

    def _bulk_decision(self, request, queryset, *, decision: str):
        form_class = BulkApproveForm if decision == "approve" else RejectForm
        form = form_class(request.POST if "apply" in request.POST else None)
        # Before the intermediate page and again on `apply`: at most BULK_ACTION_MAX_ROWS;
        # approvals ask for a fresh code first (back to the list: select, confirm again).
        if decision == "approve" and not form.is_bound:
            redirect = step_up_redirect(request)
            if redirect is not None:
                return redirect
        action_name = AUDIT_APPROVE if decision == "approve" else AUDIT_REJECT
        count = queryset.count()
        bulk = guard_bulk_action(request, action=action_name, rows=count, target=RefundRequest)
        if not bulk.allowed:
            self.message_user(request, bulk.message, messages.ERROR)
            return None
        if form.is_valid():
            done, errors = 0, []
            client = client_info_from_request(request)
            selected = list(queryset.order_by("pk"))
            guarded = None
            if decision == "approve":
                guarded = guard_money_action(
                    request,
                    action=action_name,
                    amounts=[(row.amount, row.currency) for row in selected],
                    rows=len(selected),
                    target=RefundRequest,
                    back_url=request.get_full_path(),
                )
                if not guarded.allowed:
                    self.message_user(request, guarded.message, messages.ERROR)
                    if guarded.step_up_url:
                        return HttpResponseRedirect(guarded.step_up_url)
                    return None
            # One transaction per request: one refusal does not undo the others, and each
            # approval queues its own processing on commit.
            for refund_request in selected:
                try:
                    if decision == "approve":
                        refund_request_approve(
                            refund_request=refund_request,
                            acting_user=request.user,
                            note=form.cleaned_data["note"],
                            client=client,
                        )
                    else:
                        refund_request_reject(
                            refund_request=refund_request,
                            acting_user=request.user,
                            reason=form.cleaned_data["reason"],
                            client=client,
                        )
                    done += 1
                except RefundError as exc:
                    if guarded is not None:  # nothing moved for this one
                        money_action_give_back(
                            request.user,
                            guarded,
                            rows=1,
                            amounts=[(refund_request.amount, refund_request.currency)],
                        )
                    errors.append(f"#{refund_request.pk}: {exc}")
            verb = "Approved" if decision == "approve" else "Rejected"
            if done:
                self.message_user(request, f"{verb} {done} refund request(s).", messages.SUCCESS)
            for error in errors:
                self.message_user(request, error, messages.ERROR)
            return None  # back to the changelist
        rows = list(queryset.select_related("payment", "payment__customer", "requested_by"))
        refused = sum(1 for row in rows if _bulk_refusal(request.user, row, decision))
        context = {
            **self.admin_site.each_context(request),
            "title": (
                "Approve refund requests" if decision == "approve" else "Reject refund requests"
            ),
            "opts": self.opts,
            "decision": decision,
            "form": form,
            "rows": [
                (
                    row,
                    format_money(row.amount, row.currency),
                    row.get_status_display(),
                    _bulk_refusal(request.user, row, decision),
                )
                for row in rows
            ],
            "totals": _totals(rows),
            # Every selected request would be refused: nothing to confirm.
            "all_refused": bool(rows) and refused == len(rows),
            "action_name": f"bulk_{decision}",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "refunds/admin/bulk_decision.html", context)

    # --- cells ----------------------------------------------------------------------------------

    @display(description="Request", ordering="created_at")
    def request_cell(self, obj):
        # Our own reason says more to finance than Stripe's three.
        if obj.internal_reason:
            reason = obj.get_internal_reason_display()
        else:
            reason = obj.get_reason_display()
        return two_line(f"#{obj.pk}", reason, clip=True)

    @display(description="Customer")
    def customer_cell(self, obj):
        # The "Blocked" badge: refunds to a blocked customer need a senior approver.
        return customer_two_line(obj.payment.customer)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        return format_money(obj.amount, obj.currency)

    @display(description="Priority", ordering="priority_rank")
    def priority_badge(self, obj):
        priority = getattr(obj, "priority", "")
        status = self._status_badge(obj)
        if not priority:
            return status
        return cells.stacked(cells.badge(priority.upper(), PRIORITY_COLOURS[priority]), status)

    @display(description="Priority")
    def priority_text(self, obj):
        priority = (
            selectors.refund_request_queue()
            .filter(pk=obj.pk)
            .values_list("priority", flat=True)
            .first()
        )
        return dict(Priority.CHOICES).get(priority, "— (not pending)")

    def _status_badge(self, obj):
        badge = cells.badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        if obj.status in SHOW_FAILURE_STATUSES and obj.failure_message:
            # Why it ended without a refund (Stripe's answer, or the check before the call).
            return cells.with_note(badge, Truncator(obj.failure_message).chars(90), clip=True)
        if obj.approved_by:
            return cells.with_note(
                badge, f"approved by {obj.approved_by.get_username()}", clip=True
            )
        return badge

    @display(description="Age", ordering="created_at")
    def age_cell(self, obj):
        who = obj.requested_by.get_username() if obj.requested_by else obj.get_source_display()
        return two_line(_age(timezone.now() - obj.created_at), who, clip="narrow")

    @display(description="Decide")
    def decide_cell(self, obj):
        # Plain links to the confirmation pages (which POST); only where a decision is due.
        if obj.status != RefundRequest.Status.PENDING:
            return ""
        approve, reject = self._confirm_url_patterns
        return cells.link_pair(
            approve.format(pk=obj.pk), "Approve", reject.format(pk=obj.pk), "Reject"
        )

    @cached_property
    def _confirm_url_patterns(self) -> tuple[str, str]:
        # reverse() once, not twice per row: on a 200-row page it was a tenth of the render.
        return tuple(
            reverse(f"admin:refunds_refundrequest_{name}_confirm", args=[0]).replace(
                "/0/", "/{pk}/"
            )
            for name in ("approve", "reject")
        )

    @display(description="Payment")
    def payment_link(self, obj):
        from django.utils.html import format_html

        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_payment_change", args=[obj.payment_id]),
            obj.payment.stripe_payment_intent_id,
        )

    @display(description="Customer")
    def customer_link(self, obj):
        from django.utils.html import format_html

        customer = obj.payment.customer
        if customer is None:
            return "—"
        blocked = (
            " Blocked: refunds to this customer need a senior approver."
            if customer.blocked_at
            else ""
        )
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>{}',
            reverse("admin:payments_customer_change", args=[customer.pk]),
            customer_label(customer),
            blocked,
        )


def _preset_active(request, query: str) -> bool:
    current = sorted(
        (key, value)
        for key, value in request.GET.items()
        if key not in ("p", "o", "q", "e", CURSOR_VAR, "_changelist_filters")
    )
    wanted = sorted(tuple(part.split("=", 1)) for part in query.split("&") if part)
    return current == wanted


def _bulk_refusal(user, row, decision: str) -> str:
    """Why `user` may not decide `row` (refunds.permissions.decision_refusal), or "": shown
    beside each selected request before the confirmation."""
    customer = row.payment.customer
    refusal = decision_refusal(
        user=user,
        refund_request=row,
        decision=decision,
        customer_blocked=customer is not None and customer.blocked_at is not None,
    )
    return refusal.message if refusal else ""


def _totals(rows) -> list[str]:
    """Per-currency totals of the selected requests (never summed across currencies)."""
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, 0) + row.amount
    return [format_money(amount, currency) for currency, amount in sorted(totals.items())]


__all__ = ["ApproveForm", "RefundRequestAdmin"]
