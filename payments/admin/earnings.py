"""The instructors' earnings ledger (read-only) and the queue of manual adjustments.

Presentation only: entries are written by payments.earnings and the services, never here.
Adjustments are requested through the add form (prefilled from `?instructor=<id>&currency=usd`,
the instructor page's "Adjust earnings" link) and decided by bulk approve / reject, each with
a note on an intermediate page that POSTs; the rules (four-eyes, senior limit) live in
payments/earning_adjustment_rules.py and are asked again by the services under the row lock.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import (
    ChoicesDropdownFilter,
    RangeDateTimeFilter,
    RelatedDropdownFilter,
)
from unfold.decorators import action, display
from unfold.widgets import (
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from backoffice.admin_cells import FastActionCheckboxMixin, badge, two_line, with_note
from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.formats import format_datetime
from backoffice.guard import (
    guard_bulk_action,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from backoffice.pagination import EstimatedCountPaginator
from payments.admin.filters import FILTER_CURRENCIES, CurrencyFilter
from payments.earning_adjustment_rules import (
    APPROVE,
    PERM_APPROVE,
    REJECT,
    decision_refusal,
    needs_senior,
)
from payments.models import EarningAdjustment, EarningEntry
from payments.money import (
    ERR_NOT_A_NUMBER,
    MoneyError,
    format_money,
    is_known_currency,
    parse_money,
)
from payments.services.earning_adjustments import (
    AUDIT_APPROVE,
    AUDIT_REJECT,
    ERR_AMOUNT_ZERO,
    ERR_REASON_REQUIRED,
    ERR_REJECTION_NOTE_REQUIRED,
    ERR_UNKNOWN_CURRENCY,
    EarningAdjustmentError,
    earning_adjustment_approve,
    earning_adjustment_reject,
    earning_adjustment_request,
)

KIND_COLOURS = {
    EarningEntry.Kind.EARNING: "success",
    EarningEntry.Kind.REFUND: "warning",
    EarningEntry.Kind.DISPUTE_LOST: "danger",
    EarningEntry.Kind.DISPUTE_WON: "success",
    EarningEntry.Kind.PAYOUT: "primary",
    EarningEntry.Kind.PAYOUT_RETURNED: "info",
    EarningEntry.Kind.PAYOUT_REVERSED: "info",
    EarningEntry.Kind.ADJUSTMENT: "info",
    EarningEntry.Kind.CORRECTION: "",
}
ADJUSTMENT_STATUS_COLOURS = {
    EarningAdjustment.Status.PENDING: "warning",
    EarningAdjustment.Status.APPLIED: "success",
    EarningAdjustment.Status.REJECTED: "danger",
}

# Saved views of the adjustments queue, shown as tabs above it: (label, query string).
ADJUSTMENT_PRESETS = [
    ("To approve", "status__exact=pending"),
    ("Applied", "status__exact=applied"),
    ("Rejected", "status__exact=rejected"),
    ("All", ""),
]

NOTE_NEEDS_SENIOR = "needs a senior approver"
HELP_AMOUNT = (
    "In major units of the currency (12.50, or 1500 for yen). Positive credits the instructor, "
    "negative (-12.50) debits."
)


def signed_money(amount: int, currency: str):
    """A signed amount, red when negative (money owed back by the instructor)."""
    text = format_money(amount, currency)
    if amount < 0:
        return format_html('<span class="text-red-600 dark:text-red-400">{}</span>', text)
    return text


def parse_signed_money(text: str, currency: str) -> int:
    """'-12.50' -> -1250 minor units of `currency`; MoneyError as parse_money."""
    text = (text or "").strip()
    # One sign at most: "+-12.50" is an error, never a credit (stripping every sign, as this
    # did, turned that debit into one).
    sign = -1 if text[:1] == "-" else 1
    if text[:1] in ("+", "-"):
        text = text[1:].strip()
        if text[:1] in ("+", "-"):
            raise MoneyError(ERR_NOT_A_NUMBER)
    return sign * parse_money(text, currency)


def _preset_active(request, query: str) -> bool:
    ignored = ("p", "o", "q", "e", "_changelist_filters")
    current = sorted((k, v) for k, v in request.GET.items() if k not in ignored)
    wanted = sorted(tuple(part.split("=", 1)) for part in query.split("&") if part)
    return current == wanted


# --- The ledger -----------------------------------------------------------------------------


@admin.register(EarningEntry)
class EarningEntryAdmin(ChangelistMixin, ModelAdmin):
    """Every entry of every instructor, newest first; written by the ledger, never here.
    The instructor page links here filtered: `?instructor__id__exact=<id>&currency=usd`."""

    list_display = [
        "occurred_cell",
        "instructor_cell",
        "kind_badge",
        "amount_cell",
        "available_cell",
        "reference_cell",
    ]
    list_display_links = ["occurred_cell"]
    list_select_related = ["instructor", "payment"]
    list_filter = [
        ("kind", ChoicesDropdownFilter),
        CurrencyFilter,
        ("instructor", RelatedDropdownFilter),
        ("occurred_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_spec = SearchSpec(
        ids=(
            ("pi_", "payment__stripe_payment_intent_id"),
            ("acct_", "instructor__stripe_account_id"),
        ),
        # Not the reference: a substring scan of the whole ledger. Entries are found by their
        # instructor or payment; the filters narrow them by kind and date.
        text=("instructor__name", "instructor__email"),
        help_text=(
            "Searches: instructor name or e-mail (any part, any case); a whole payment id "
            "(pi_) or connected account id (acct_) in any case."
        ),
    )
    fields = [
        "instructor",
        "kind",
        "amount_cell",
        "reference",
        "description",
        "payment_link",
        "payout",
        "adjustment",
        "occurred_at",
        "available_at",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # written by the ledger and the services only

    def has_change_permission(self, request, obj=None):
        return False  # append-only: a mistake is corrected by another entry

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Occurred", ordering="occurred_at")
    def occurred_cell(self, obj):
        return two_line(format_datetime(obj.occurred_at), obj.description, clip=True)

    @display(description="Instructor", ordering="instructor__name")
    def instructor_cell(self, obj):
        return two_line(obj.instructor.name, obj.instructor.email, clip=True)

    @display(description="Kind", ordering="kind")
    def kind_badge(self, obj):
        return badge(obj.get_kind_display(), KIND_COLOURS.get(obj.kind, ""))

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        return signed_money(obj.amount, obj.currency)

    @display(description="Available", ordering="available_at")
    def available_cell(self, obj):
        when = format_datetime(obj.available_at)
        if obj.available_at > timezone.now():
            return with_note(when, "on hold")
        return when

    @display(description="Reference")
    def reference_cell(self, obj):
        reference = Truncator(obj.reference).chars(60)
        if obj.payment_id:
            url = reverse("admin:payments_payment_change", args=[obj.payment_id])
            return format_html(
                '<a class="text-primary-600 underline" href="{}">{}</a>', url, reference
            )
        return reference

    @display(description="Payment")
    def payment_link(self, obj):
        if obj.payment_id is None:
            return "—"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_payment_change", args=[obj.payment_id]),
            obj.payment.stripe_payment_intent_id,
        )


# --- Adjustments ----------------------------------------------------------------------------


def _textarea(rows: int = 3):
    return UnfoldAdminTextareaWidget(attrs={"rows": rows})


class EarningAdjustmentAddForm(forms.ModelForm):
    """Request an adjustment. `amount` is typed signed, in major units of the currency."""

    currency = forms.ChoiceField(
        choices=[(code, code.upper()) for code in FILTER_CURRENCIES],
        widget=UnfoldAdminSelectWidget,
    )
    amount = forms.CharField(
        label="Amount",
        max_length=32,
        help_text=HELP_AMOUNT,
        widget=UnfoldAdminTextInputWidget,
    )
    reason = forms.CharField(
        max_length=2000,
        widget=_textarea(),
        help_text="Why (kept on the adjustment, in the entry and in the audit trail).",
    )

    class Meta:
        model = EarningAdjustment
        fields = ["instructor", "currency", "amount", "reason"]

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(ERR_REASON_REQUIRED)
        return reason

    def clean(self):
        cleaned = super().clean()
        currency = cleaned.get("currency", "")
        raw = self.data.get(self.add_prefix("amount"), "")
        if not is_known_currency(currency):
            self.add_error("currency", ERR_UNKNOWN_CURRENCY.format(currency=currency))
            return cleaned
        try:
            amount = parse_signed_money(raw, currency)
        except MoneyError as exc:
            self.add_error("amount", str(exc))
            return cleaned
        if amount == 0:
            self.add_error("amount", ERR_AMOUNT_ZERO)
            return cleaned
        cleaned["amount"] = amount
        self.instance.amount = amount
        return cleaned


class DecisionNoteForm(forms.Form):
    """The note every bulk decision needs (it goes on each adjustment and its audit row)."""

    note = forms.CharField(
        label="Note",
        max_length=2000,
        widget=_textarea(),
        error_messages={"required": ERR_REJECTION_NOTE_REQUIRED},
        help_text="Required: why these adjustments are approved or rejected (audit trail).",
    )

    def clean_note(self):
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(ERR_REJECTION_NOTE_REQUIRED)
        return note


@admin.register(EarningAdjustment)
class EarningAdjustmentAdmin(ChangelistMixin, FastActionCheckboxMixin, ModelAdmin):
    list_display = [
        "adjustment_cell",
        "instructor_cell",
        "amount_cell",
        "status_badge",
        "requested_cell",
    ]
    list_display_links = ["adjustment_cell"]
    list_select_related = ["instructor", "requested_by", "decided_by"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        CurrencyFilter,
        ("instructor", RelatedDropdownFilter),
    ]
    list_filter_submit = True
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    search_spec = SearchSpec(
        text=("instructor__name", "instructor__email", "reason"),
        number="pk",
        help_text="Searches: adjustment number (#12); instructor name or e-mail; the reason.",
    )
    list_before_template = "payments/admin/earning_adjustment_presets.html"
    actions = ["bulk_approve", "bulk_reject"]
    form = EarningAdjustmentAddForm
    readonly_fields = [
        "instructor",
        "amount_cell",
        "status",
        "reason",
        "requested_by",
        "created_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "entry_link",
    ]

    # --- permissions --------------------------------------------------------------------------

    def has_change_permission(self, request, obj=None):
        return False  # decisions are actions, never field edits

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request, obj=None):
        return request.user.has_perm(PERM_APPROVE)

    # --- the add form (a request) ---------------------------------------------------------------

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["instructor", "currency", "amount", "reason"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        # ?instructor=<id>&currency=usd from the instructor page; a bad value is ignored.
        initial = super().get_changeform_initial_data(request)
        currency = str(initial.get("currency", "")).lower()
        initial["currency"] = currency if currency in FILTER_CURRENCIES else "usd"
        if not str(initial.get("instructor", "")).isdigit():
            initial.pop("instructor", None)
        return initial

    def save_model(self, request, obj, form, change):
        # The service writes it (validation, audit); the admin only shows the result.
        created = earning_adjustment_request(
            instructor=form.cleaned_data["instructor"],
            amount=form.cleaned_data["amount"],
            currency=form.cleaned_data["currency"],
            reason=form.cleaned_data["reason"],
            acting_user=request.user,
            client=client_info_from_request(request),
        )
        obj.pk = created.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # no related objects; the service saved everything

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            f"{obj} requested: someone else must approve it before it counts.",
            messages.SUCCESS,
        )
        return super().response_post_save_add(request, obj)

    # --- the queue -----------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "queue_presets": [
                (label, query, _preset_active(request, query))
                for label, query in ADJUSTMENT_PRESETS
            ],
        }
        return super().changelist_view(request, extra_context)

    @action(description="Approve selected adjustments", permissions=["approve"])
    def bulk_approve(self, request, queryset):
        return self._bulk_decision(request, queryset, decision=APPROVE)

    @action(description="Reject selected adjustments", permissions=["approve"])
    def bulk_reject(self, request, queryset):
        return self._bulk_decision(request, queryset, decision=REJECT)

    def _bulk_decision(self, request, queryset, *, decision: str):
        form = DecisionNoteForm(request.POST if "apply" in request.POST else None)
        # Before the intermediate page and again on `apply`: at most BULK_ACTION_MAX_ROWS;
        # approvals ask for a fresh code first (back to the list: select, confirm again).
        if decision == APPROVE and not form.is_bound:
            redirect = step_up_redirect(request)
            if redirect is not None:
                return redirect
        action_name = AUDIT_APPROVE if decision == APPROVE else AUDIT_REJECT
        bulk = guard_bulk_action(
            request, action=action_name, rows=queryset.count(), target=EarningAdjustment
        )
        if not bulk.allowed:
            self.message_user(request, bulk.message, messages.ERROR)
            return None
        if form.is_bound and form.is_valid():
            done, client = 0, client_info_from_request(request)
            selected = list(queryset.order_by("pk"))
            guarded = None
            if decision == APPROVE:
                guarded = guard_money_action(
                    request,
                    action=action_name,
                    amounts=[(row.amount, row.currency) for row in selected],
                    rows=len(selected),
                    target=EarningAdjustment,
                    back_url=request.get_full_path(),
                )
                if not guarded.allowed:
                    self.message_user(request, guarded.message, messages.ERROR)
                    if guarded.step_up_url:
                        return HttpResponseRedirect(guarded.step_up_url)
                    return None
            # One transaction per adjustment: a refusal does not undo the others.
            for adjustment in selected:
                try:
                    if decision == APPROVE:
                        earning_adjustment_approve(
                            adjustment=adjustment,
                            acting_user=request.user,
                            note=form.cleaned_data["note"],
                            client=client,
                        )
                    else:
                        earning_adjustment_reject(
                            adjustment=adjustment,
                            acting_user=request.user,
                            note=form.cleaned_data["note"],
                            client=client,
                        )
                    done += 1
                except EarningAdjustmentError as exc:
                    if guarded is not None:  # nothing moved for this one
                        money_action_give_back(
                            request.user,
                            guarded,
                            rows=1,
                            amounts=[(adjustment.amount, adjustment.currency)],
                        )
                    self.message_user(request, f"{adjustment}: {exc}", messages.ERROR)
            if done:
                verb = "Approved and applied" if decision == APPROVE else "Rejected"
                self.message_user(request, f"{verb} {done} adjustment(s).", messages.SUCCESS)
            return None  # back to the changelist
        rows = list(queryset.select_related("instructor", "requested_by").order_by("pk"))
        refusals = [
            decision_refusal(user=request.user, adjustment=r, decision=decision) for r in rows
        ]
        totals: dict[str, int] = {}
        for row in rows:
            totals[row.currency] = totals.get(row.currency, 0) + row.amount
        context = {
            **self.admin_site.each_context(request),
            "title": (
                "Approve earnings adjustments"
                if decision == APPROVE
                else "Reject earnings adjustments"
            ),
            "opts": self.opts,
            "decision": decision,
            "form": form,
            "rows": [
                (row, signed_money(row.amount, row.currency), refusal.message if refusal else "")
                for row, refusal in zip(rows, refusals, strict=True)
            ],
            # Per currency, never added across currencies.
            "totals": [
                format_money(amount, currency) for currency, amount in sorted(totals.items())
            ],
            "all_refused": bool(rows) and all(refusals),
            "action_name": f"bulk_{decision}",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "payments/admin/earning_adjustment_bulk.html", context)

    # --- cells ----------------------------------------------------------------------------------

    @display(description="Adjustment", ordering="created_at")
    def adjustment_cell(self, obj):
        return two_line(f"#{obj.pk}", obj.reason, clip=True)

    @display(description="Instructor", ordering="instructor__name")
    def instructor_cell(self, obj):
        return two_line(obj.instructor.name, obj.instructor.email, clip=True)

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        return signed_money(obj.amount, obj.currency)

    @display(description="Status", ordering="status")
    def status_badge(self, obj):
        cell = badge(obj.get_status_display(), ADJUSTMENT_STATUS_COLOURS.get(obj.status, ""))
        if obj.status == EarningAdjustment.Status.PENDING and needs_senior(
            amount=obj.amount, currency=obj.currency
        ):
            return with_note(cell, NOTE_NEEDS_SENIOR)
        if obj.decided_by:
            return with_note(cell, f"by {obj.decided_by.get_username()}", clip=True)
        return cell

    @display(description="Requested", ordering="created_at")
    def requested_cell(self, obj):
        who = obj.requested_by.get_username() if obj.requested_by else "system"
        return two_line(format_datetime(obj.created_at), who)

    @display(description="Ledger entry")
    def entry_link(self, obj):
        entry = EarningEntry.objects.filter(adjustment=obj).only("pk", "reference").first()
        if entry is None:
            return "— (applied only when approved)"
        return format_html(
            '<a class="text-primary-600 underline" href="{}">{}</a>',
            reverse("admin:payments_earningentry_change", args=[entry.pk]),
            entry.reference,
        )
