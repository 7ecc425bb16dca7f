"""Admin views for refund decisions and requests. Every view that changes something accepts
POST only (GET -> 405) and checks its permission on the server (staff without it -> 403)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from backoffice.audit import client_info_from_request
from backoffice.guard import (
    guard_admin_response,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from backoffice.refusals import Refusal
from payments.models import Payment
from payments.money import format_money
from refunds.forms import ApproveForm, RefundRequestCreateForm, RejectForm
from refunds.models import RefundRequest
from refunds.permissions import APPROVE, decision_refusal, request_refusal
from refunds.rules import amount_error, needs_senior_approval, senior_message
from refunds.selectors import payment_refundability
from refunds.services import (
    AUDIT_APPROVE,
    PERM_APPROVE,
    PERM_REQUEST,
    RefundError,
    refund_request_approve,
    refund_request_create,
    refund_request_reject,
)

DECISIONS = {
    "approve": ("Approve refund request", ApproveForm),
    "reject": ("Reject refund request", RejectForm),
}


def _queue_url() -> str:
    return reverse("admin:refunds_refundrequest_changelist")


def _decision_url(refund_request_id, decision: str) -> str:
    return reverse(f"admin:refunds_refundrequest_{decision}_confirm", args=[refund_request_id])


def decision_page(model_admin, request, object_id, *, decision: str, form=None, status=200):
    """The confirmation page behind the Approve / Reject links (read-only; its form POSTs)."""
    if request.method != "GET" and form is None:
        return HttpResponseNotAllowed(["GET"])
    if not request.user.has_perm(PERM_APPROVE):
        raise PermissionDenied
    if decision == APPROVE and form is None:
        # The approval will ask for a fresh code: ask before the note is typed, not after.
        redirect = step_up_redirect(request)
        if redirect is not None:
            return redirect
    refund_request = get_object_or_404(
        RefundRequest.objects.select_related("payment", "payment__customer", "requested_by"),
        pk=object_id,
    )
    title, form_class = DECISIONS[decision]
    refundability = payment_refundability(
        payment=refund_request.payment, refund_request=refund_request
    )
    customer = refund_request.payment.customer
    customer_blocked = customer is not None and customer.blocked_at is not None
    # What the service would refuse, known before the click: the button is disabled and the
    # page says why (the service asks the same question again under the lock).
    refusal = decision_refusal(
        user=request.user,
        refund_request=refund_request,
        decision=decision,
        customer_blocked=customer_blocked,
    )
    if refusal is None and decision == APPROVE:
        message = refundability.blocked_reason or amount_error(
            amount=refund_request.amount,
            currency=refund_request.currency,
            payment_currency=refundability.currency,
            refundable=refundability.refundable,
        )
        refusal = Refusal(message) if message else None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title} #{refund_request.pk}",
        "opts": model_admin.opts,
        "original": refund_request,
        "decision": decision,
        "form": form or form_class(),
        "post_url": reverse(f"admin:refunds_refundrequest_{decision}", args=[refund_request.pk]),
        "amount": format_money(refund_request.amount, refund_request.currency),
        "refundable": format_money(refundability.refundable, refundability.currency),
        "is_pending": refund_request.status == RefundRequest.Status.PENDING,
        "needs_senior": needs_senior_approval(
            amount=refund_request.amount,
            currency=refund_request.currency,
            customer_blocked=customer_blocked,
        ),
        "senior_reason": senior_message(
            refund_request.currency,
            amount=refund_request.amount,
            customer_blocked=customer_blocked,
        ),
        "own_request": refund_request.requested_by_id == request.user.pk,
        "refusal": refusal,
    }
    return TemplateResponse(request, "refunds/admin/decision.html", context, status=status)


class _DecisionView(View):
    """POST <pk>/approve/ or <pk>/reject/. GET -> 405 (http_method_names)."""

    http_method_names = ["post"]
    model_admin = None
    decision = ""

    def post(self, request, pk):
        if not request.user.has_perm(PERM_APPROVE):
            raise PermissionDenied
        refund_request = get_object_or_404(RefundRequest, pk=pk)
        _, form_class = DECISIONS[self.decision]
        form = form_class(request.POST)
        if not form.is_valid():
            return decision_page(
                self.model_admin, request, pk, decision=self.decision, form=form, status=400
            )
        guarded = None
        if self.decision == "approve":
            back_url = _decision_url(pk, self.decision)
            guarded = guard_money_action(
                request,
                action=AUDIT_APPROVE,
                amounts=[(refund_request.amount, refund_request.currency)],
                target=refund_request,
                back_url=back_url,
            )
            if not guarded.allowed:
                return guard_admin_response(request, guarded, back_url=back_url)
        try:
            if self.decision == "approve":
                refund_request_approve(
                    refund_request=refund_request,
                    acting_user=request.user,
                    note=form.cleaned_data["note"],
                    client=client_info_from_request(request),
                )
                messages.success(request, f"Approved {refund_request}: the refund is on its way.")
            else:
                refund_request_reject(
                    refund_request=refund_request,
                    acting_user=request.user,
                    reason=form.cleaned_data["reason"],
                    client=client_info_from_request(request),
                )
                messages.success(request, f"Rejected {refund_request}.")
        except RefundError as exc:
            if guarded is not None:
                money_action_give_back(request.user, guarded)  # nothing moved
            messages.error(request, str(exc))
            return HttpResponseRedirect(_decision_url(pk, self.decision))
        return HttpResponseRedirect(_queue_url())


class ApproveView(_DecisionView):
    decision = "approve"


class RejectView(_DecisionView):
    decision = "reject"


class PaymentRefundView(View):
    """GET: the payment's refund eligibility (captured, processed, in flight, pending,
    refundable for a new request) and, unless ?check=1, the request form. POST: create the
    request (partial allowed)."""

    http_method_names = ["get", "post"]
    model_admin = None

    def _render(self, request, payment, form, *, check_only=False, status=200):
        refundability = payment_refundability(payment=payment)
        open_requests = (
            RefundRequest.objects.filter(payment=payment)
            .select_related("requested_by")
            .order_by("-created_at", "-id")[:20]
        )
        context = {
            **self.model_admin.admin_site.each_context(request),
            "title": f"Refund {payment.stripe_payment_intent_id}",
            "opts": self.model_admin.opts,
            "payment": payment,
            "payment_url": reverse("admin:payments_payment_change", args=[payment.pk]),
            "figures": [
                ("Captured", format_money(refundability.captured, payment.currency)),
                (
                    "Already refunded (incl. pending in Stripe)",
                    format_money(refundability.processed, payment.currency),
                ),
                (
                    "In flight (approved, processing)",
                    format_money(refundability.in_flight, payment.currency),
                ),
                (
                    "Asked for, awaiting approval",
                    format_money(refundability.pending, payment.currency),
                ),
            ],
            "refundable": format_money(refundability.refundable, payment.currency),
            "blocked_reason": refundability.blocked_reason,
            "eligible": not refundability.blocked_reason and refundability.refundable > 0,
            "form": form,
            "check_only": check_only,
            "can_request": request.user.has_perm(PERM_REQUEST),
            # Why this user may not request a refund here ("" when they may).
            "request_refusal": str(
                request_refusal(
                    user=request.user, payment=payment, refundable=refundability.refundable
                )
                or ""
            ),
            "requests": [(row, format_money(row.amount, row.currency)) for row in open_requests],
        }
        return TemplateResponse(
            request, "refunds/admin/payment_refund.html", context, status=status
        )

    def get(self, request, payment_id):
        if not request.user.has_perm("payments.view_payment"):
            raise PermissionDenied
        payment = get_object_or_404(Payment.objects.select_related("customer"), pk=payment_id)
        return self._render(
            request,
            payment,
            RefundRequestCreateForm(payment=payment),
            check_only=request.GET.get("check") == "1",
        )

    def post(self, request, payment_id):
        if not request.user.has_perm(PERM_REQUEST):
            raise PermissionDenied
        payment = get_object_or_404(Payment.objects.select_related("customer"), pk=payment_id)
        form = RefundRequestCreateForm(request.POST, payment=payment)
        if form.is_valid():
            try:
                refund_request = refund_request_create(
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    currency=form.cleaned_data["currency"],
                    reason=form.cleaned_data["reason"],
                    internal_reason=form.cleaned_data["internal_reason"] or "",
                    customer_note=form.cleaned_data["customer_note"],
                    admin_notes=form.cleaned_data["admin_notes"],
                    notify_customer=form.cleaned_data["notify_customer"],
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except RefundError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"{refund_request} for "
                    f"{format_money(refund_request.amount, refund_request.currency)} is waiting "
                    "for approval.",
                )
                return HttpResponseRedirect(
                    reverse("admin:refunds_refundrequest_change", args=[refund_request.pk])
                )
        return self._render(request, payment, form, status=400)
