"""The fraud review worklist and the alert page.

Presentation only: every step is a POST to <pk>/assign/, <pk>/investigate/ or <pk>/resolve/
(GET answers 405, staff without payments.review_fraudalert get 403) or the bulk "Resolve"
action with its intermediate form, and the rules live in payments.services.fraud_alert. The
alert page also shows the customer's block state and the Block form
(payments/admin/customer_block.py)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.admin_cells import badge, stacked, two_line, with_note
from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.guard import guard_bulk_action
from payments.admin.fraud_rules import SEVERITY_COLOURS, RuleAlertColumnsMixin, numbers_text
from payments.models import FraudAlert
from payments.money import format_money
from payments.services.customer_block import PERM_BLOCK
from payments.services.fraud_alert import (
    ALLOWED_TRANSITIONS,
    PERM_REVIEW,
    FraudReviewError,
    fraud_alert_assign,
    fraud_alert_resolve,
    fraud_alert_start_investigating,
)

from .display import blocked_badge

# The audit row of a bulk resolve refused by the guard (the resolves audit themselves).
AUDIT_BULK_RESOLVE = "fraud_alert_resolve"

STATUS_COLOURS = {
    FraudAlert.Status.OPEN: "danger",
    FraudAlert.Status.INVESTIGATING: "warning",
    FraudAlert.Status.CONFIRMED: "primary",
    FraudAlert.Status.DISMISSED: "info",
}

# What the resolve button says once an outcome is picked (the form states the choice before
# it is made, never a result).
OUTCOME_BUTTONS = {
    FraudAlert.Status.CONFIRMED: "Resolve as confirmed fraud",
    FraudAlert.Status.DISMISSED: "Resolve as false positive",
}


class FraudResolveForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[
            (FraudAlert.Status.CONFIRMED, "Confirmed fraud"),
            (FraudAlert.Status.DISMISSED, "False positive (not fraud)"),
        ],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Why: what you checked (customer history, IP, card country ...).",
    )


@admin.register(FraudAlert)
class FraudAlertAdmin(ChangelistMixin, RuleAlertColumnsMixin, ModelAdmin):
    """The fraud review worklist: unresolved alerts first, newest first. Our own rules' columns
    come from RuleAlertColumnsMixin (payments/admin/fraud_rules.py)."""

    # Chosen to fit 1280 px with the sidebar open (tests/e2e/test_layouts.py): what tripped
    # the alert under its type, the status under the severity, with the risk score and who
    # has it; the source is a filter and on the alert's page.
    list_display = [
        "alert_cell",
        "amount",
        "severity_status_cell",
        "payment_cell",
        "created",
    ]
    list_select_related = ["payment", "payment__customer", "reviewed_by", "assigned_to"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        "source",
        ("rule", ChoicesDropdownFilter),
        ("severity", ChoicesDropdownFilter),
        "fraud_type",
    ]
    search_spec = SearchSpec(
        ids=(
            ("issfr_", "stripe_id"),
            ("pi_", "payment__stripe_payment_intent_id"),
            ("ch_", "payment__stripe_charge_id"),
            ("py_", "payment__stripe_charge_id"),
        ),
        text=(
            "customer__name",
            "customer__email",
            "payment__customer__name",
            "payment__customer__email",
        ),
        number="pk",
        help_text=(
            "Searches: alert number (#12); customer name or e-mail (any part, any case); a "
            "whole Stripe id in any case: early fraud warning issfr_, payment pi_, charge ch_."
        ),
    )
    show_full_result_count = False
    actions = ["resolve_selected"]
    change_form_outer_before_template = "payments/admin/fraud_alert_review.html"
    # The page shows the evidence, then the review; the raw JSON columns (`numbers`,
    # `payment_ids`) appear only through their readable cells.
    fieldsets = [
        (
            "Alert",
            {
                "fields": [
                    "payment",
                    "customer",
                    "source",
                    "rule",
                    "fraud_type",
                    "severity",
                    "risk_score",
                    "numbers_cell",
                    "linked_payments",
                    "cause_key",
                    "stripe_id",
                    "created",
                ]
            },
        ),
        (
            "Review",
            {
                "fields": [
                    "status",
                    "assigned_to",
                    "assigned_at",
                    "investigating_since",
                    "reviewed_by",
                    "reviewed_at",
                    "review_note",
                ]
            },
        ),
    ]
    readonly_fields = [
        "payment",
        "source",
        "stripe_id",
        "fraud_type",
        "status",
        "assigned_to",
        "assigned_at",
        "investigating_since",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "created",
        # Rule alerts.
        "rule",
        "severity",
        "risk_score",
        "numbers_cell",
        "cause_key",
        "customer",
        "linked_payments",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request, obj=None):
        return request.user.has_perm(PERM_REVIEW)

    def get_queryset(self, request):
        # Unresolved (open, investigating) before resolved: the stored values do not sort that
        # way, so rank them. A small table (one row per alert), ordered once per page.
        # Not super(): it orders by get_ordering() before the annotation exists.
        return self.model._default_manager.annotate(
            unresolved_rank=Case(
                When(status__in=FraudAlert.UNRESOLVED_STATUSES, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )

    def get_ordering(self, request):
        return ["unresolved_rank", "-created", "-id"]

    # --- cells --------------------------------------------------------------------------------

    @display(description="Alert", ordering="rule")
    def alert_cell(self, obj):
        # Our rule's name (Radar's fraud type for Stripe's warnings) over what tripped it.
        return two_line(
            f"#{obj.pk} {self.rule_cell(obj)}", numbers_text(obj.rule, obj.numbers), clip=True
        )

    @display(description="Severity", ordering="risk_score")
    def severity_status_cell(self, obj):
        status = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        severity = (
            badge(obj.get_severity_display(), SEVERITY_COLOURS.get(obj.severity, ""))
            if obj.severity
            else ""
        )
        person = obj.reviewed_by if obj.is_resolved else obj.assigned_to
        note = " · ".join(
            part
            for part in (
                f"risk {obj.risk_score}" if obj.risk_score is not None else "",
                person.get_username() if person else "",
            )
            if part
        )
        cell = stacked(severity, status)
        return with_note(cell, note, clip=True) if note else cell

    @display(description="Payment")
    def payment_cell(self, obj):
        customer = obj.payment.customer
        who = (
            format_html(
                "{}{}", blocked_badge(customer, leading=True), customer.email or customer.stripe_id
            )
            if customer is not None
            else "—"
        )
        return two_line(obj.payment.stripe_payment_intent_id, who, clip=True)

    @display(description="Amount")
    def amount(self, obj):
        return format_money(obj.payment.amount, obj.payment.currency)

    # --- the alert page -----------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        alert = (
            FraudAlert.objects.select_related(
                "payment", "payment__customer", "payment__customer__blocked_by", "assigned_to"
            )
            .filter(pk=object_id)
            .first()
        )
        extra = {}
        if alert is not None:
            extra = _review_context(request, alert, FraudResolveForm())
        extra_context = {
            **(extra_context or {}),
            **extra,
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- POST-only workflow steps -------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/assign/",
                wrap(require_POST(self.assign_view)),
                name="payments_fraudalert_assign",
            ),
            path(
                "<path:object_id>/investigate/",
                wrap(require_POST(self.investigate_view)),
                name="payments_fraudalert_investigate",
            ),
            path(
                "<path:object_id>/resolve/",
                wrap(require_POST(self.resolve_view)),
                name="payments_fraudalert_resolve",
            ),
            *super().get_urls(),
        ]

    def _step(self, request, object_id, step, **kwargs):
        if not self.has_review_permission(request):
            raise PermissionDenied
        alert = get_object_or_404(FraudAlert, pk=object_id)
        try:
            result = step(
                alert=alert,
                acting_user=request.user,
                client=client_info_from_request(request),
                **kwargs,
            )
        except FraudReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            level = messages.SUCCESS if result.changed else messages.WARNING
            self.message_user(request, result.message, level)
        return HttpResponseRedirect(reverse("admin:payments_fraudalert_change", args=[alert.pk]))

    def assign_view(self, request, object_id):
        return self._step(request, object_id, fraud_alert_assign)

    def investigate_view(self, request, object_id):
        return self._step(request, object_id, fraud_alert_start_investigating)

    def resolve_view(self, request, object_id):
        # The service checks the outcome and the note (its messages are the errors shown).
        return self._step(
            request,
            object_id,
            fraud_alert_resolve,
            outcome=request.POST.get("outcome", ""),
            note=request.POST.get("note", ""),
        )

    # --- bulk -----------------------------------------------------------------------------------

    @admin.action(description="Resolve selected alerts…", permissions=["review"])
    def resolve_selected(self, request, queryset):
        form = FraudResolveForm(request.POST if "apply" in request.POST else None)
        # A confirmed-fraud outcome may propose refunds and block customers: at most
        # BULK_ACTION_MAX_ROWS alerts at once, before the page and again on `apply`.
        bulk = guard_bulk_action(
            request, action=AUDIT_BULK_RESOLVE, rows=queryset.count(), target=FraudAlert
        )
        if not bulk.allowed:
            self.message_user(request, bulk.message, messages.ERROR)
            return None
        if form.is_bound and form.is_valid():
            outcome = form.cleaned_data["outcome"]
            done = 0
            client = client_info_from_request(request)
            # One transaction per alert: one refusal does not undo the others.
            for alert in queryset.order_by("pk"):
                try:
                    result = fraud_alert_resolve(
                        alert=alert,
                        outcome=outcome,
                        note=form.cleaned_data["note"],
                        acting_user=request.user,
                        client=client,
                    )
                    done += result.changed
                except FraudReviewError as exc:
                    self.message_user(request, str(exc), messages.ERROR)
            if done:
                label = FraudAlert.Status(outcome).label.lower()
                self.message_user(request, f"{done} alert(s) {label}.", messages.SUCCESS)
            return None  # back to the changelist
        alerts = list(queryset.select_related("payment", "payment__customer"))
        return TemplateResponse(
            request,
            "payments/admin/fraud_review.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Resolve {len(alerts)} fraud alert{'s' if len(alerts) != 1 else ''}",
                "opts": self.model._meta,
                "alerts": alerts,
                "form": form,
                "outcome_buttons": OUTCOME_BUTTONS,
                "action": "resolve_selected",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


def _review_context(request, alert: FraudAlert, form: FraudResolveForm) -> dict:
    """What the workflow panel above the alert's fields needs."""
    customer = alert.payment.customer
    can_review = request.user.has_perm(PERM_REVIEW)
    return {
        "alert": alert,
        "customer": customer,
        "can_review": can_review,
        "can_block": request.user.has_perm(PERM_BLOCK),
        "can_assign": can_review
        and not alert.is_resolved
        and alert.assigned_to_id != request.user.pk,
        "can_investigate": can_review
        and alert.status in ALLOWED_TRANSITIONS[FraudAlert.Status.INVESTIGATING],
        "can_resolve": can_review and not alert.is_resolved,
        "resolve_form": form,
        "outcome_buttons": OUTCOME_BUTTONS,
        "payment_url": reverse("admin:payments_payment_change", args=[alert.payment_id]),
        "amount": format_money(alert.payment.amount, alert.payment.currency),
        # The customer's other payments: the payments list searched by their Stripe id.
        "customer_payments_url": (
            f"{reverse('admin:payments_payment_changelist')}?q={customer.stripe_id}"
            if customer is not None
            else ""
        ),
    }
