"""The views behind the payout screens (payments/admin/payout.py).

Every view that changes something accepts POST only (GET -> 405) and checks its permission on
the server (staff without it -> 403) before it calls payments.services.payouts, which asks
the same questions again under the row lock and writes the audit row in its transaction. What
a page says before the click (a disabled button, "Before you confirm") comes from
payments.payout_rules, the module the services ask, so the two cannot differ.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View

from backoffice.audit import audit_record, client_info_from_request
from backoffice.guard import (
    guard_admin_response,
    guard_bulk_action,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from payments import payout_rules
from payments.earnings_selectors import earning_balances
from payments.models import Instructor, Payout, PayoutRun
from payments.money import format_money, threshold_minor
from payments.services.payouts import (
    AUDIT_APPROVE,
    AUDIT_CANCEL,
    AUDIT_MARK_PAID,
    AUDIT_REVERSE,
    PayoutError,
    payout_approve,
    payout_bank_file_rows,
    payout_cancel,
    payout_manual_create,
    payout_mark_paid,
    payout_reverse,
    payout_run_create,
)

from .payout_forms import (
    ManualPayoutForm,
    PayoutApproveForm,
    PayoutCancelForm,
    PayoutMarkPaidForm,
    PayoutReverseForm,
)

PERM_ADD = payout_rules.PERM_CREATE
PERM_APPROVE = payout_rules.PERM_APPROVE
PERM_MARK_PAID = payout_rules.PERM_MARK_PAID
PERM_REVERSE = payout_rules.PERM_REVERSE
# The bank-transfer file carries instructors' bank accounts and is what the bank pays from:
# it goes to the staff who mark bank transfers paid.
PERM_BANK_FILE = PERM_MARK_PAID

APPROVE, CANCEL, MARK_PAID, REVERSE = "approve", "cancel", "mark-paid", "reverse"
STEPS = (APPROVE, CANCEL, MARK_PAID, REVERSE)
# The steps that move money pass the money-action guard (backoffice/guard.py) first.
# Marking paid records that the bank sent the money: it closes the payout for good (and
# what a bank file lists), so it is stepped up and rate limited like approving.
MONEY_STEPS = {APPROVE: AUDIT_APPROVE, MARK_PAID: AUDIT_MARK_PAID, REVERSE: AUDIT_REVERSE}
STEP_PERMISSIONS = {
    APPROVE: PERM_APPROVE,
    CANCEL: PERM_APPROVE,
    MARK_PAID: PERM_MARK_PAID,
    REVERSE: PERM_REVERSE,
}

AUDIT_BANK_FILE = "payout.bank_file_download"
MSG_NO_BANK_PAYOUTS = (
    "No approved bank-transfer payouts in the selection: the file lists only those "
    "(pending ones need an approval first; Connect payouts are paid by Stripe)."
)
MSG_APPROVED = "Approved {count} payout(s)."
MSG_CANCELED = "Canceled {count} payout(s); their amounts are back in the balances."
MSG_STEP_DONE = {
    APPROVE: "Approved {payout}.",
    CANCEL: "Canceled {payout}: {amount} is back in the instructor's balance.",
    MARK_PAID: "Marked {payout} paid (bank reference {reference}).",
    REVERSE: "Reversed {amount} of {payout}'s transfer: the amount is back in the balance.",
}
MSG_MANUAL_CREATED = "{payout} for {amount} is waiting for approval by someone else."
ERR_NO_INSTRUCTOR = "Open this form from an instructor's page (?instructor=<id>)."
MSG_PICK_INSTRUCTOR = "Open the instructor's page and use “New manual payout” there."
MSG_RUN_CREATED = "Payout run #{run} created {count} payout(s): {totals}. They wait for approval."
MSG_RUN_EMPTY = "Nothing to pay out: no available balance reaches its currency's minimum."

# Statuses a bank-transfer file may list: approved and not yet marked paid.
BANK_FILE_STATUSES = (Payout.Status.APPROVED,)


def _step_url(pk, step: str) -> str:
    return reverse(f"admin:payments_payout_{step.replace('-', '_')}", args=[pk])


def _change_url(pk) -> str:
    return reverse("admin:payments_payout_change", args=[pk])


def totals_by_currency(rows: Iterable[tuple[int, str]]) -> list[str]:
    """'$1,234.00 (3)' per currency of (amount, currency) pairs, never summed across them."""
    amounts: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for amount, currency in rows:
        amounts[currency] += amount
        counts[currency] += 1
    return [f"{format_money(amounts[code], code)} ({counts[code]})" for code in sorted(amounts)]


def run_totals_text(run: PayoutRun) -> str:
    """A run's stored totals per currency ({"usd": {"count": 2, "amount": 1234}}) as text."""
    parts = []
    for code, figures in sorted((run.totals or {}).items()):
        try:
            parts.append(f"{format_money(int(figures['amount']), code)} ({int(figures['count'])})")
        except (KeyError, TypeError, ValueError):
            parts.append(f"{code}: ?")  # a malformed row never breaks the list
    return " · ".join(parts) or "none"


# --- bulk approve / cancel ---------------------------------------------------------------------


def bulk_decision(model_admin, request, queryset, *, decision: str):
    """The intermediate page of the bulk actions, then (on `apply`) the service per payout."""
    form_class = PayoutApproveForm if decision == APPROVE else PayoutCancelForm
    form = form_class(request.POST if "apply" in request.POST else None)
    # Before the intermediate page and again on `apply`: at most BULK_ACTION_MAX_ROWS;
    # approvals ask for a fresh code first (back to the list: select, confirm again).
    if decision == APPROVE and not form.is_bound:
        redirect = step_up_redirect(request)
        if redirect is not None:
            return redirect
    action_name = AUDIT_APPROVE if decision == APPROVE else AUDIT_CANCEL
    bulk = guard_bulk_action(request, action=action_name, rows=queryset.count(), target=Payout)
    if not bulk.allowed:
        model_admin.message_user(request, bulk.message, messages.ERROR)
        return None
    if form.is_valid():
        done, errors = 0, []
        client = client_info_from_request(request)
        selected = list(queryset.order_by("pk"))
        guarded = None
        if decision == APPROVE:
            guarded = guard_money_action(
                request,
                action=action_name,
                amounts=[(payout.amount, payout.currency) for payout in selected],
                rows=len(selected),
                target=Payout,
                back_url=request.get_full_path(),
            )
            if not guarded.allowed:
                model_admin.message_user(request, guarded.message, messages.ERROR)
                return HttpResponseRedirect(guarded.step_up_url) if guarded.step_up_url else None
        # One transaction per payout (inside the service): one refusal does not undo the
        # others, and each approval queues its own processing on commit.
        for payout in selected:
            try:
                if decision == APPROVE:
                    payout_approve(
                        payout=payout,
                        acting_user=request.user,
                        note=form.cleaned_data["note"],
                        client=client,
                    )
                else:
                    payout_cancel(
                        payout=payout,
                        reason=form.cleaned_data["reason"],
                        acting_user=request.user,
                        client=client,
                    )
                done += 1
            except PayoutError as exc:
                if guarded is not None:  # nothing moved for this one
                    money_action_give_back(
                        request.user, guarded, rows=1, amounts=[(payout.amount, payout.currency)]
                    )
                errors.append(f"#{payout.pk}: {exc}")
        if done:
            template = MSG_APPROVED if decision == APPROVE else MSG_CANCELED
            model_admin.message_user(request, template.format(count=done), messages.SUCCESS)
        for error in errors:
            model_admin.message_user(request, error, messages.ERROR)
        return None  # back to the changelist
    payouts = list(queryset.select_related("instructor", "requested_by").order_by("pk"))
    rows = [(payout, _refusal(request.user, payout, decision)) for payout in payouts]
    accepted = [payout for payout, refusal in rows if not refusal]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Approve payouts" if decision == APPROVE else "Cancel payouts",
        "opts": model_admin.opts,
        "decision": decision,
        "form": form,
        "rows": [
            (payout, format_money(payout.amount, payout.currency), refusal)
            for payout, refusal in rows
        ],
        # What the confirmation moves, per currency: the payouts that would pass, and all.
        "totals": totals_by_currency((p.amount, p.currency) for p in accepted),
        "selected_totals": totals_by_currency((p.amount, p.currency) for p in payouts),
        "accepted_count": len(accepted),
        "action_name": "bulk_approve" if decision == APPROVE else "bulk_cancel",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "payments/admin/payout_bulk.html", context)


def _refusal(user, payout: Payout, decision: str) -> str:
    """Why `user` may not approve or cancel `payout` now, or "" (payments.payout_rules)."""
    if decision == APPROVE:
        refusal = payout_rules.approve_refusal(user=user, payout=payout)
    else:
        refusal = payout_rules.cancel_refusal(user=user, payout=payout)
    return str(refusal) if refusal else ""


# --- one payout's page: the forms and their POST-only endpoints -------------------------------


def page_tools_context(request, payout: Payout, forms: dict | None = None) -> dict:
    """What the panel above a payout's fields shows: the forms this user may submit now, and
    why the others are not offered."""
    user = request.user
    forms = forms or {}
    context = {
        "payout": payout,
        "amount": format_money(payout.amount, payout.currency),
        "left_to_reverse": format_money(payout.amount - payout.amount_reversed, payout.currency),
        "approve_refusal": _refusal(user, payout, APPROVE),
        "cancel_refusal": _refusal(user, payout, CANCEL),
        "mark_paid_refusal": str(payout_rules.mark_paid_refusal(user=user, payout=payout) or ""),
        "reverse_refusal": str(payout_rules.reverse_refusal(user=user, payout=payout) or ""),
        "approve_form": forms.get(APPROVE) or PayoutApproveForm(),
        "cancel_form": forms.get(CANCEL) or PayoutCancelForm(),
        "mark_paid_form": forms.get(MARK_PAID) or PayoutMarkPaidForm(),
        "reverse_form": forms.get(REVERSE) or PayoutReverseForm(currency=payout.currency),
        "can_approve": user.has_perm(PERM_APPROVE),
        "can_mark_paid": user.has_perm(PERM_MARK_PAID),
        "can_reverse": user.has_perm(PERM_REVERSE),
        "urls": {step.replace("-", "_"): _step_url(payout.pk, step) for step in STEPS},
    }
    context["show_approve"] = payout.status == Payout.Status.PENDING
    context["show_cancel"] = payout.status in (Payout.Status.PENDING, Payout.Status.APPROVED)
    context["show_mark_paid"] = (
        payout.method == Payout.Method.BANK and payout.status == Payout.Status.APPROVED
    )
    context["show_reverse"] = (
        payout.method == Payout.Method.CONNECT
        and payout.status == Payout.Status.PAID
        and payout.amount_reversed < payout.amount
    )
    return context


class PayoutStepView(View):
    """POST <pk>/approve/, /cancel/, /mark-paid/ or /reverse/. GET -> 405."""

    http_method_names = ["post"]
    model_admin = None
    step = ""

    def post(self, request, pk):
        if not request.user.has_perm(STEP_PERMISSIONS[self.step]):
            raise PermissionDenied
        payout = get_object_or_404(Payout.objects.select_related("instructor"), pk=pk)
        form = self._form(request, payout)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return HttpResponseRedirect(_change_url(payout.pk))
        data = form.cleaned_data
        client = client_info_from_request(request)
        guarded = None
        if self.step in MONEY_STEPS:
            # Approving pays the instructor, marking paid records the bank's payment, reversing
            # takes a transfer back: all move money (the payout's amount, or the reversed part).
            amount = data["amount"] if self.step == REVERSE else payout.amount
            guarded = guard_money_action(
                request,
                action=MONEY_STEPS[self.step],
                amounts=[(amount, payout.currency)],
                target=payout,
                back_url=_change_url(payout.pk),
            )
            if not guarded.allowed:
                return guard_admin_response(request, guarded, back_url=_change_url(payout.pk))
        try:
            if self.step == APPROVE:
                payout_approve(
                    payout=payout, acting_user=request.user, note=data["note"], client=client
                )
            elif self.step == CANCEL:
                payout_cancel(
                    payout=payout, reason=data["reason"], acting_user=request.user, client=client
                )
            elif self.step == MARK_PAID:
                payout_mark_paid(
                    payout=payout,
                    bank_reference=data["bank_reference"],
                    acting_user=request.user,
                    client=client,
                )
            else:
                payout_reverse(
                    payout=payout,
                    amount=data["amount"],
                    reason=data["reason"],
                    acting_user=request.user,
                    client=client,
                )
        except PayoutError as exc:
            if guarded is not None:
                money_action_give_back(request.user, guarded)  # nothing moved
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                MSG_STEP_DONE[self.step].format(
                    payout=payout,
                    amount=format_money(data.get("amount") or payout.amount, payout.currency),
                    reference=data.get("bank_reference", ""),
                ),
            )
        return HttpResponseRedirect(_change_url(payout.pk))

    def _form(self, request, payout):
        if self.step == APPROVE:
            return PayoutApproveForm(request.POST)
        if self.step == CANCEL:
            return PayoutCancelForm(request.POST)
        if self.step == MARK_PAID:
            return PayoutMarkPaidForm(request.POST)
        return PayoutReverseForm(request.POST, currency=payout.currency)


# --- a manual payout ------------------------------------------------------------------------


class ManualPayoutView(View):
    """GET: the form for ?instructor=<id>[&currency=usd] with the instructor's balances.
    POST: payout_manual_create (pending; someone else approves it)."""

    http_method_names = ["get", "post"]
    model_admin = None

    def _instructor(self, request):
        raw = request.POST.get("instructor") or request.GET.get("instructor") or ""
        if not raw.isdigit():
            return None
        return Instructor.objects.filter(pk=int(raw)).first()

    def _render(self, request, instructor, form, *, status=200):
        balances = sorted(
            earning_balances(instructor_ids=[instructor.pk]).values(), key=lambda b: b.currency
        )
        context = {
            **self.model_admin.admin_site.each_context(request),
            "title": f"New manual payout to {instructor.name}",
            "opts": self.model_admin.opts,
            "instructor": instructor,
            "instructor_url": reverse("admin:payments_instructor_change", args=[instructor.pk]),
            "balances": [
                (
                    balance.currency.upper(),
                    format_money(balance.available, balance.currency),
                    format_money(balance.on_hold, balance.currency),
                    balance.available < 0,
                )
                for balance in balances
            ],
            "form": form,
        }
        return TemplateResponse(
            request, "payments/admin/payout_manual.html", context, status=status
        )

    def _currencies(self, instructor) -> list[str]:
        return sorted(
            {currency for _, currency in earning_balances(instructor_ids=[instructor.pk])}
        )

    def get(self, request):
        if not request.user.has_perm(PERM_ADD):
            raise PermissionDenied
        instructor = self._instructor(request)
        if instructor is None:
            # The "+" of the payouts list: a payout is for someone; their page has the button.
            messages.info(request, MSG_PICK_INSTRUCTOR)
            return HttpResponseRedirect(reverse("admin:payments_instructor_changelist"))
        initial = {"currency": (request.GET.get("currency") or "").lower()[:3] or None}
        form = ManualPayoutForm(
            initial={k: v for k, v in initial.items() if v},
            currencies=self._currencies(instructor),
        )
        return self._render(request, instructor, form)

    def post(self, request):
        if not request.user.has_perm(PERM_ADD):
            raise PermissionDenied
        instructor = self._instructor(request)
        if instructor is None:
            return HttpResponseBadRequest(ERR_NO_INSTRUCTOR)
        form = ManualPayoutForm(request.POST, currencies=self._currencies(instructor))
        if form.is_valid():
            try:
                payout = payout_manual_create(
                    instructor=instructor,
                    amount=form.cleaned_data["amount"],
                    currency=form.cleaned_data["currency"],
                    note=form.cleaned_data["note"],
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except PayoutError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    MSG_MANUAL_CREATED.format(
                        payout=payout, amount=format_money(payout.amount, payout.currency)
                    ),
                )
                return HttpResponseRedirect(_change_url(payout.pk))
        return self._render(request, instructor, form, status=400)


# --- the bank-transfer file ---------------------------------------------------------------------


class _Echo:
    """csv.writer's file: hands each line back instead of storing it (streamed response)."""

    def write(self, value):
        return value


def _csv_lines(rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def bank_file_response(request, payouts, *, name: str, run: PayoutRun | None = None):
    """The CSV of the approved bank-transfer payouts among `payouts` (a queryset; the rows
    are payments.services.payouts.payout_bank_file_rows'), audited: the file carries bank
    accounts and is what the bank pays from. None (with a message) when there are none."""
    if not request.user.has_perm(PERM_BANK_FILE):
        raise PermissionDenied
    eligible = payouts.filter(method=Payout.Method.BANK, status__in=BANK_FILE_STATUSES)
    listed = list(eligible.order_by("pk").values_list("pk", "amount", "currency"))
    if not listed:
        messages.warning(request, MSG_NO_BANK_PAYOUTS)
        return None
    with transaction.atomic():
        audit_record(
            acting_user=request.user,
            action=AUDIT_BANK_FILE,
            target=run if run is not None else Payout,
            target_id=None if run is not None else name,
            details={
                "payout_ids": [pk for pk, _, _ in listed],
                "totals": totals_by_currency((amount, currency) for _, amount, currency in listed),
            },
            client=client_info_from_request(request),
        )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        # Exactly the payouts the audit row lists (a second read of `eligible` could differ
        # if one was approved or canceled in between).
        _csv_lines(
            payout_bank_file_rows(Payout.objects.filter(pk__in=[pk for pk, _, _ in listed]))
        ),
        content_type="text/csv",
    )
    response["Content-Disposition"] = f'attachment; filename="payouts-{name}-{stamp}.csv"'
    return response


class RunBankFileView(View):
    """GET <run pk>/bank-file/: the run's approved bank-transfer payouts as CSV. A read (the
    payouts do not change), so a link; audited like the bulk action."""

    http_method_names = ["get"]

    def get(self, request, pk):
        if not request.user.has_perm(PERM_BANK_FILE):
            raise PermissionDenied
        run = get_object_or_404(PayoutRun, pk=pk)
        response = bank_file_response(
            request, Payout.objects.filter(run=run), name=f"run-{run.pk}", run=run
        )
        if response is None:
            return HttpResponseRedirect(reverse("admin:payments_payoutrun_changelist"))
        return response


# --- a payout run started from the admin ---------------------------------------------------------


def _totals_text(totals: dict) -> list[str]:
    return [
        f"{format_money(figures['amount'], code)} ({figures['count']})"
        for code, figures in sorted(totals.items())
    ]


class PayoutRunCreateView(View):
    """GET: what a run would create now, per currency (payout_run_create with dry_run; writes
    nothing), with the currency to restrict it to. POST: the run itself (trigger "admin"),
    then the payouts list on the run's pending payouts. Both need payments.add_payout."""

    http_method_names = ["get", "post"]
    model_admin = None

    def _currency(self, request) -> str | None:
        return (request.POST.get("currency") or request.GET.get("currency") or "").lower() or None

    def get(self, request):
        if not request.user.has_perm(PERM_ADD):
            raise PermissionDenied
        currency = self._currency(request)
        error, preview = "", None
        try:
            preview = payout_run_create(currency=currency, dry_run=True, acting_user=request.user)
        except PayoutError as exc:
            error = str(exc)
        context = {
            **self.model_admin.admin_site.each_context(request),
            "title": "New payout run",
            "opts": self.model_admin.opts,
            "currency": currency or "",
            "currencies": sorted(settings.PAYOUT_MINIMUM),
            "minimums": [
                (code.upper(), format_money(threshold_minor(settings.PAYOUT_MINIMUM, code), code))
                for code in sorted(settings.PAYOUT_MINIMUM)
            ],
            "error": error,
            "preview": preview,
            "totals": _totals_text(preview.totals) if preview else [],
            "skipped": sorted(preview.skipped_open_payout.items()) if preview else [],
        }
        return TemplateResponse(
            request, "payments/admin/payout_run_new.html", context, status=400 if error else 200
        )

    def post(self, request):
        if not request.user.has_perm(PERM_ADD):
            raise PermissionDenied
        try:
            result = payout_run_create(
                currency=self._currency(request),
                trigger="admin",
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(reverse("admin:payments_payoutrun_add"))
        if not result.payouts_created:
            messages.warning(request, MSG_RUN_EMPTY)
            return HttpResponseRedirect(reverse("admin:payments_payoutrun_changelist"))
        messages.success(
            request,
            MSG_RUN_CREATED.format(
                run=result.run_id,
                count=result.payouts_created,
                totals=" · ".join(_totals_text(result.totals)),
            ),
        )
        return HttpResponseRedirect(
            f"{reverse('admin:payments_payout_changelist')}?run={result.run_id}"
        )
