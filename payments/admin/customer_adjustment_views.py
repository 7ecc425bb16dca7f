"""The views behind the customer adjustment screens (payments/admin/customer_adjustment.py).

Every view that changes something accepts POST only (GET -> 405, except the request form's
own page) and checks its permission on the server (staff without it -> 403) before it calls
payments.services.customer_adjustments, which asks the same questions again under the row
lock and writes the audit row in its transaction. What a page says before the click (a
disabled button, "Before you confirm") comes from payments.customer_adjustment_rules, the
module the services ask, so the two cannot differ.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views import View

from backoffice.audit import client_info_from_request
from backoffice.guard import (
    guard_admin_response,
    guard_bulk_action,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from payments import customer_adjustment_rules as rules
from payments.models import Customer, CustomerAdjustment
from payments.money import format_money
from payments.services.customer_adjustments import (
    AUDIT_APPROVE,
    AUDIT_REJECT,
    CustomerAdjustmentError,
    customer_adjustment_approve,
    customer_adjustment_reject,
    customer_adjustment_request,
    describe,
)

from .customer_adjustment_forms import (
    CustomerAdjustmentApproveForm,
    CustomerAdjustmentRejectForm,
    CustomerAdjustmentRequestForm,
)

APPROVE, REJECT = rules.APPROVE, rules.REJECT
STEPS = (APPROVE, REJECT)

MSG_REQUESTED = "{adjustment} ({what}) is waiting for approval by someone else."
MSG_STEP_DONE = {
    APPROVE: "Approved {adjustment} ({what}).",
    REJECT: "Rejected {adjustment} ({what}).",
}
MSG_APPROVED_MONEY = " It is being applied to the customer's Stripe balance."
MSG_BULK_DONE = {
    APPROVE: "Approved {count} adjustment(s).",
    REJECT: "Rejected {count} adjustment(s).",
}
DECISION_FORMS = {APPROVE: CustomerAdjustmentApproveForm, REJECT: CustomerAdjustmentRejectForm}
DECISION_SERVICES = {APPROVE: customer_adjustment_approve, REJECT: customer_adjustment_reject}

MSG_PICK_CUSTOMER = "Open the customer's page and request the adjustment there."
ERR_NO_CUSTOMER = "Open this form from a customer's page (?customer=<id>)."


def step_url(pk, step: str) -> str:
    return reverse(f"admin:payments_customeradjustment_{step}", args=[pk])


def change_url(pk) -> str:
    return reverse("admin:payments_customeradjustment_change", args=[pk])


def customer_url(pk) -> str:
    return reverse("admin:payments_customer_change", args=[pk])


def signed_change(adjustment: CustomerAdjustment):
    """'+$12.50' / '-1 h 30 min': the change in the customer's favour, red when a debit."""
    if adjustment.unit == CustomerAdjustment.Unit.MONEY:
        text = format_money(adjustment.amount, adjustment.currency)
    else:
        text = rules.format_minutes(adjustment.minutes)
    if adjustment.direction == CustomerAdjustment.Direction.DEBIT:
        return format_html('<span class="text-red-600 dark:text-red-400">-{}</span>', text)
    return format_html("+{}", text)


def totals_by_currency(rows: Iterable[CustomerAdjustment]) -> list[str]:
    """Net change per currency in the customers' favour ('+$12.50 (3)', '-¥500 (1)'), hours
    as their own line ('+2 h (1)'); never summed across currencies."""
    amounts: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    minutes, hours_count = 0, 0
    for row in rows:
        if row.unit == CustomerAdjustment.Unit.MONEY:
            amounts[row.currency] += row.signed_amount
            counts[row.currency] += 1
        else:
            minutes += row.signed_minutes
            hours_count += 1
    lines = [
        f"{'+' if amounts[code] > 0 else ''}{format_money(amounts[code], code)} ({counts[code]})"
        for code in sorted(amounts)
    ]
    if hours_count:
        sign = "-" if minutes < 0 else "+"
        lines.append(f"{sign}{rules.format_minutes(minutes)} ({hours_count})")
    return lines


def guard_amounts(adjustments: Iterable[CustomerAdjustment]) -> list[tuple[int, str]]:
    """What the money-action guard counts against the hourly limits: each money adjustment's
    amount in its currency (a debit moves money too). Hours have no currency: they count as
    actions (a row each), not as money."""
    return [(row.amount, row.currency) for row in adjustments if row.unit == "money"]


def refusal_text(user, adjustment: CustomerAdjustment, decision: str) -> str:
    refusal = rules.decision_refusal(user=user, adjustment=adjustment, decision=decision)
    return str(refusal) if refusal else ""


# --- bulk approve / reject ----------------------------------------------------------------------


def bulk_decision(model_admin, request, queryset, *, decision: str):
    """The intermediate page of the bulk actions, then (on `apply`) the service per
    adjustment, each in its own transaction (one refusal does not undo the others)."""
    form = DECISION_FORMS[decision](request.POST if "apply" in request.POST else None)
    # Approving moves money (backoffice/guard.py): a fresh second-factor code before the
    # confirmation page, so the code comes before the typing; both decisions take at most
    # BULK_ACTION_MAX_ROWS, asked before the page and again on `apply`.
    if decision == APPROVE and not form.is_bound:
        redirect = step_up_redirect(request)
        if redirect is not None:
            return redirect
    audit_action = AUDIT_APPROVE if decision == APPROVE else AUDIT_REJECT
    bulk = guard_bulk_action(
        request, action=audit_action, rows=queryset.count(), target=CustomerAdjustment
    )
    if not bulk.allowed:
        model_admin.message_user(request, bulk.message, messages.ERROR)
        return None
    if form.is_valid():
        done, errors = 0, []
        client = client_info_from_request(request)
        service = DECISION_SERVICES[decision]
        selected = list(queryset.select_related("customer").order_by("pk"))
        guarded = None
        if decision == APPROVE:
            guarded = guard_money_action(
                request,
                action=audit_action,
                amounts=guard_amounts(selected),
                rows=len(selected),
                target=CustomerAdjustment,
                back_url=request.get_full_path(),
            )
            if not guarded.allowed:
                model_admin.message_user(request, guarded.message, messages.ERROR)
                if guarded.step_up_url:
                    return HttpResponseRedirect(guarded.step_up_url)
                return None
        # One transaction per adjustment (inside the service): one refusal does not undo the
        # others, and each money approval queues its own apply task on commit.
        for adjustment in selected:
            try:
                service(
                    adjustment=adjustment,
                    acting_user=request.user,
                    note=form.cleaned_data["note"],
                    client=client,
                )
                done += 1
            except CustomerAdjustmentError as exc:
                if guarded is not None:  # nothing moved for this one
                    money_action_give_back(
                        request.user, guarded, rows=1, amounts=guard_amounts([adjustment])
                    )
                errors.append(f"#{adjustment.pk}: {exc}")
        if done:
            model_admin.message_user(
                request, MSG_BULK_DONE[decision].format(count=done), messages.SUCCESS
            )
        for error in errors:
            model_admin.message_user(request, error, messages.ERROR)
        return None  # back to the changelist
    adjustments = list(queryset.select_related("customer", "requested_by").order_by("pk"))
    rows = [(row, refusal_text(request.user, row, decision)) for row in adjustments]
    accepted = [row for row, refusal in rows if not refusal]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Approve customer adjustments"
        if decision == APPROVE
        else "Reject customer adjustments",
        "opts": model_admin.opts,
        "decision": decision,
        "form": form,
        "rows": [(row, signed_change(row), refusal) for row, refusal in rows],
        # What the confirmation changes, per currency: the ones that would pass, and all.
        "totals": totals_by_currency(accepted),
        "selected_totals": totals_by_currency(adjustments),
        "accepted_count": len(accepted),
        "action_name": f"bulk_{decision}",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "payments/admin/customer_adjustment_bulk.html", context)


# --- one adjustment's page ------------------------------------------------------------------------


def page_tools_context(request, adjustment: CustomerAdjustment) -> dict:
    """What the panel above an adjustment's fields shows: the forms this user may submit now,
    and why approving is not offered when a rule says no."""
    user = request.user
    pending = adjustment.status == CustomerAdjustment.Status.PENDING
    return {
        "adjustment": adjustment,
        "what": describe(adjustment),
        "adjustment_change": signed_change(adjustment),
        "customer_url": customer_url(adjustment.customer_id),
        "senior_reason": rules.senior_reason(adjustment) if pending else "",
        "approve_refusal": refusal_text(user, adjustment, APPROVE),
        "reject_refusal": refusal_text(user, adjustment, REJECT),
        "approve_form": CustomerAdjustmentApproveForm(),
        "reject_form": CustomerAdjustmentRejectForm(),
        "can_decide": pending and user.has_perm(rules.PERM_APPROVE),
        "urls": {step: step_url(adjustment.pk, step) for step in STEPS},
    }


class DecisionView(View):
    """POST <pk>/approve/ or <pk>/reject/. GET -> 405."""

    http_method_names = ["post"]
    model_admin = None
    step = ""

    def post(self, request, pk):
        if not request.user.has_perm(rules.PERM_APPROVE):
            raise PermissionDenied
        adjustment = get_object_or_404(CustomerAdjustment.objects.select_related("customer"), pk=pk)
        form = DECISION_FORMS[self.step](request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return HttpResponseRedirect(change_url(adjustment.pk))
        guarded = None
        if self.step == APPROVE:
            # Approving moves money (or hours): the money-action guard first.
            guarded = guard_money_action(
                request,
                action=AUDIT_APPROVE,
                amounts=guard_amounts([adjustment]),
                target=adjustment,
                back_url=change_url(adjustment.pk),
            )
            if not guarded.allowed:
                return guard_admin_response(request, guarded, back_url=change_url(adjustment.pk))
        try:
            DECISION_SERVICES[self.step](
                adjustment=adjustment,
                acting_user=request.user,
                note=form.cleaned_data["note"],
                client=client_info_from_request(request),
            )
        except CustomerAdjustmentError as exc:
            if guarded is not None:
                money_action_give_back(request.user, guarded)  # nothing moved
            messages.error(request, str(exc))
        else:
            text = MSG_STEP_DONE[self.step].format(adjustment=adjustment, what=describe(adjustment))
            if self.step == APPROVE and adjustment.unit == CustomerAdjustment.Unit.MONEY:
                text += MSG_APPROVED_MONEY
            messages.success(request, text)
        return HttpResponseRedirect(change_url(adjustment.pk))


# --- the request form -----------------------------------------------------------------------------


class RequestView(View):
    """GET ?customer=<id>: the request form on its own page. POST (from there or from the
    customer page's panel): customer_adjustment_request (pending; someone else approves)."""

    http_method_names = ["get", "post"]
    model_admin = None

    def _customer(self, request):
        raw = request.POST.get("customer") or request.GET.get("customer") or ""
        if not raw.isdigit():
            return None
        return Customer.objects.filter(pk=int(raw)).first()

    def _render(self, request, customer, form, *, status=200):
        context = {
            **self.model_admin.admin_site.each_context(request),
            "title": f"Adjust {customer}",
            "opts": self.model_admin.opts,
            "customer": customer,
            "customer_url": customer_url(customer.pk),
            "form": form,
            "stripe_balance": stripe_balance_text(customer),
        }
        return TemplateResponse(
            request, "payments/admin/customer_adjustment_request.html", context, status=status
        )

    def get(self, request):
        if not request.user.has_perm(rules.PERM_REQUEST):
            raise PermissionDenied
        customer = self._customer(request)
        if customer is None:
            messages.info(request, MSG_PICK_CUSTOMER)
            return HttpResponseRedirect(reverse("admin:payments_customer_changelist"))
        form = CustomerAdjustmentRequestForm(balance_currency=customer.stripe_balance_currency)
        return self._render(request, customer, form)

    def post(self, request):
        if not request.user.has_perm(rules.PERM_REQUEST):
            raise PermissionDenied
        customer = self._customer(request)
        if customer is None:
            return HttpResponseBadRequest(ERR_NO_CUSTOMER)
        form = CustomerAdjustmentRequestForm(
            request.POST, balance_currency=customer.stripe_balance_currency
        )
        if form.is_valid():
            data = form.cleaned_data
            try:
                adjustment = customer_adjustment_request(
                    customer=customer,
                    direction=data["direction"],
                    unit=data["unit"],
                    amount=data["amount"],
                    currency=data["currency"],
                    minutes=data["minutes"],
                    reason=data["reason"],
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except CustomerAdjustmentError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    MSG_REQUESTED.format(adjustment=adjustment, what=describe(adjustment)),
                )
                return HttpResponseRedirect(change_url(adjustment.pk))
        return self._render(request, customer, form, status=400)


def balance_words(balance: int | None, currency: str) -> str:
    """A Stripe customer balance (Stripe's sign) in words: 'Credit of $12.50' (negative),
    'Owes $3.00' (positive), 'None', or '—' when unknown."""
    if balance is None:
        return "—"
    if not balance or not currency:
        return "None"
    if balance < 0:
        return f"Credit of {format_money(-balance, currency)}"
    return f"Owes {format_money(balance, currency)}"


def stripe_balance_text(customer: Customer) -> str:
    """The customer's mirrored Stripe balance in words ('—' before the sync has read it)."""
    return balance_words(customer.stripe_balance, customer.stripe_balance_currency)
