from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.admin_cells import two_line
from backoffice.audit import client_info_from_request
from payments.admin.fraud_rules import RuleAlertColumnsMixin
from payments.models import FraudAlert
from payments.money import format_money
from payments.services.fraud_alert import PERM_REVIEW, FraudReviewError, fraud_alert_review

STATUS_COLOURS = {
    FraudAlert.Status.OPEN: "danger",
    FraudAlert.Status.DISMISSED: "info",
    FraudAlert.Status.CONFIRMED: "warning",
}


class FraudReviewForm(forms.Form):
    note = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Why: what you checked (customer history, IP, card country ...).",
    )


@admin.register(FraudAlert)
class FraudAlertAdmin(RuleAlertColumnsMixin, ModelAdmin):
    """The fraud review worklist: open alerts first. Decisions are bulk actions (POST, with a
    confirmation form that asks for a note), checked again in the service."""

    list_display = [
        "alert",
        "payment_cell",
        "amount",
        "source",
        # Our own rules' columns (payments/admin/fraud_rules.py).
        "rule_cell",
        "severity_badge",
        "risk_cell",
        "numbers_cell",
        "status_badge",
        "created",
        "reviewed_by",
    ]
    list_select_related = ["payment", "payment__customer", "reviewed_by"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        "source",
        ("rule", ChoicesDropdownFilter),
        ("severity", ChoicesDropdownFilter),
        "fraud_type",
    ]
    search_fields = [
        "=stripe_id",
        "=payment__stripe_payment_intent_id",
        "=payment__stripe_charge_id",
    ]
    ordering = ["status", "-created", "-id"]  # "open" sorts before the decided ones
    show_full_result_count = False
    actions = ["dismiss", "confirm"]
    readonly_fields = [
        "payment",
        "source",
        "stripe_id",
        "fraud_type",
        "status",
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

    def has_review_permission(self, request):
        return request.user.has_perm(PERM_REVIEW)

    @display(description="Alert")
    def alert(self, obj):
        return f"#{obj.pk}"

    @display(description="Payment")
    def payment_cell(self, obj):
        customer = obj.payment.customer
        return two_line(obj.payment.stripe_payment_intent_id, customer.email if customer else "")

    @display(description="Amount")
    def amount(self, obj):
        return format_money(obj.payment.amount, obj.payment.currency)

    @display(description="Status", ordering="status", label=STATUS_COLOURS)
    def status_badge(self, obj):
        return obj.status, obj.get_status_display()

    @admin.action(description="Dismiss selected alerts (not fraud)", permissions=["review"])
    def dismiss(self, request, queryset):
        return self._review(request, queryset, FraudAlert.Status.DISMISSED, "dismiss")

    @admin.action(description="Confirm fraud on selected alerts", permissions=["review"])
    def confirm(self, request, queryset):
        return self._review(request, queryset, FraudAlert.Status.CONFIRMED, "confirm")

    def _review(self, request, queryset, decision, action_name):
        form = FraudReviewForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for alert in queryset:
                try:
                    fraud_alert_review(
                        alert=alert,
                        decision=decision,
                        note=form.cleaned_data["note"],
                        acting_user=request.user,
                        client=client_info_from_request(request),
                    )
                    done += 1
                except FraudReviewError as exc:
                    self.message_user(request, str(exc), messages.ERROR)
            if done:
                self.message_user(
                    request,
                    f"{done} alert(s) {FraudAlert.Status(decision).label.lower()}.",
                    messages.SUCCESS,
                )
            return None  # back to the changelist
        return TemplateResponse(
            request,
            "payments/admin/fraud_review.html",
            {
                **self.admin_site.each_context(request),
                "title": FraudAlert.Status(decision).label,
                "opts": self.model._meta,
                "alerts": queryset.select_related("payment"),
                "form": form,
                "action": action_name,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )
