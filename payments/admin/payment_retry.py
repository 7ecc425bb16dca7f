"""Retry a failed payment from its page: a POST button, an intermediate confirmation with a
reason, then payments.services.payment_retry. GET answers 405; staff without
payments.retry_payment get 403. And the read-only list of retries and their outcomes."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.guard import (
    guard_admin_response,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from payments.models import Payment, PaymentMethod, PaymentRetry
from payments.money import format_money
from payments.services.payment_retry import (
    ACTION,
    PERM_RETRY,
    PaymentRetryNotAllowed,
    payment_retry,
    payment_retry_refusal,
)


class PaymentRetryForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Why this payment is being charged again (kept in the audit trail).",
    )


class PaymentRetryAdminMixin:
    """Mounts <pk>/retry/ on the payment admin."""

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm(PERM_RETRY)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The page shows the "Retry payment" button disabled, with the service's own reason,
        # when the retry would be refused (payment_retry_refusal; asked again on POST).
        payment = (
            Payment.objects.select_related("customer").filter(pk=object_id).first()
            if str(object_id).isdigit()
            else None
        )
        if payment is not None:
            customer = payment.customer
            extra_context = {
                **(extra_context or {}),
                "retry_refusal": payment_retry_refusal(
                    user=request.user,
                    payment=payment,
                    customer_blocked_at=customer.blocked_at if customer else None,
                    customer_block_reason=customer.block_reason if customer else "",
                ),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        retry = path(
            "<path:object_id>/retry/",
            self.admin_site.admin_view(self.retry_view),
            name="payments_payment_retry",
        )
        return [retry, *super().get_urls()]

    def retry_view(self, request, object_id):
        return require_POST(self._retry)(request, object_id)

    def _retry(self, request, object_id):
        if not self.has_retry_permission(request):
            raise PermissionDenied
        payment = get_object_or_404(Payment.objects.select_related("customer"), pk=object_id)
        change_url = reverse("admin:payments_payment_change", args=[payment.pk])
        # The button on the payment page posts without `confirm`: show the form.
        form = PaymentRetryForm(request.POST if "confirm" in request.POST else None)
        if not form.is_bound:
            # Charging again moves money: a fresh code before the reason is typed.
            redirect = step_up_redirect(request, next_url=change_url)
            if redirect is not None:
                return redirect
        if form.is_valid():
            guarded = guard_money_action(
                request,
                action=ACTION,
                amounts=[(payment.amount, payment.currency)],
                target=payment,
                back_url=change_url,
            )
            if not guarded.allowed:
                return guard_admin_response(request, guarded, back_url=change_url)
            try:
                result = payment_retry(
                    payment=payment,
                    reason=form.cleaned_data["reason"],
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except PaymentRetryNotAllowed as exc:
                money_action_give_back(request.user, guarded)  # nothing moved
                self.message_user(request, exc.message, messages.ERROR)
            else:
                level = messages.SUCCESS if result.succeeded else messages.WARNING
                self.message_user(request, result.message, level)
            return HttpResponseRedirect(change_url)
        method = None
        if payment.customer_id:
            method = PaymentMethod.objects.filter(
                customer_id=payment.customer_id, is_default=True
            ).first()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Retry payment {payment}",
            "opts": self.model._meta,
            "original": payment,
            "payment": payment,
            "method": method,
            "amount": format_money(payment.amount, payment.currency),
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "payments/admin/payment_retry_confirm.html", context)


RETRY_STATUS_COLOURS = {
    PaymentRetry.Status.PROCESSING: "info",
    PaymentRetry.Status.UNKNOWN: "warning",
    PaymentRetry.Status.SUCCEEDED: "success",
    PaymentRetry.Status.DECLINED: "danger",
    PaymentRetry.Status.FAILED: "danger",
}


@admin.register(PaymentRetry)
class PaymentRetryAdmin(ChangelistMixin, ModelAdmin):
    """Every retry and how it ended. Read-only: retries are made from the payment page and
    move only through payments.services.payment_retry."""

    list_display = [
        "created_at",
        "payment",
        "amount_display",
        "status_badge",
        "decline_code",
        "attempts",
        "requested_by",
    ]
    list_filter = [("status", ChoicesDropdownFilter)]
    list_select_related = ["payment", "requested_by"]
    search_spec = SearchSpec(
        ids=(("pi_", "stripe_payment_intent_id"), ("pi_", "payment__stripe_payment_intent_id")),
        text=("payment__customer__name", "payment__customer__email", "idempotency_key"),
        help_text=(
            "Searches: customer name or e-mail, or the idempotency key (any part, any case); a "
            "whole Stripe payment id (pi_) in any case."
        ),
    )
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)

    @display(description="Status", ordering="status", label=RETRY_STATUS_COLOURS)
    def status_badge(self, obj):
        return obj.status, obj.get_status_display()
