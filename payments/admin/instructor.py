"""Instructors: what each is owed per currency (balance, available, on hold), their latest
earnings and payouts, and the links that start a manual payout or an earnings adjustment.

Balances are sums of EarningEntry (payments.earnings_selectors): the list reads them for the
whole page in one grouped query, the page for the one instructor. A negative figure (a
clawback after a payout, carried forward) is shown in red."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin
from unfold.decorators import display

from backoffice.admin_cells import badge, two_line
from backoffice.changelist import ChangelistMixin, SearchSpec
from payments.earnings_selectors import EarningBalance
from payments.instructor_selectors import balances_by_instructor, instructor_earnings
from payments.models import Instructor
from payments.money import format_money

from .payout import STATUS_COLOURS as PAYOUT_STATUS_COLOURS

NO_BALANCE = "—"
NO_BANK_ACCOUNT = "Bank transfer: no bank account on file"


def signed_money(amount: int, currency: str):
    """format_money, in red when negative (owed back by the instructor)."""
    text = format_money(amount, currency)
    if amount < 0:
        return format_html('<span class="text-red-600" data-testid="negative">{}</span>', text)
    return text


def mask_account(number: str) -> str:
    """'•••• 9268 19': the last six characters of a bank account, enough to tell two apart."""
    return f"•••• {number[-6:]}" if len(number) > 6 else number


def balance_line(balance: EarningBalance):
    """'$120.00 · available $100.00 · on hold $20.00' for one currency."""
    return format_html(
        '<span class="whitespace-nowrap">{}</span> <span class="text-base-500 text-xs '
        'whitespace-nowrap">available {} · on hold {}</span>',
        signed_money(balance.balance, balance.currency),
        signed_money(balance.available, balance.currency),
        signed_money(balance.on_hold, balance.currency),
    )


@admin.register(Instructor)
class InstructorAdmin(ChangelistMixin, ModelAdmin):
    list_display = ["instructor_cell", "paid_by_cell", "balances_cell"]
    list_display_links = ["instructor_cell"]
    list_per_page = 50
    # A few thousand rows at most: the substring scans need no index.
    search_spec = SearchSpec(
        ids=(("acct_", "stripe_account_id"),),
        text=("name", "email"),
        help_text=(
            "Searches: name or e-mail (any part, any case); a whole Stripe connected account "
            "id (acct_) in any case."
        ),
    )
    fields = ["name", "email", "stripe_account_id", "external_id", "bank_account"]
    change_form_outer_before_template = "payments/admin/instructor_balances.html"
    change_form_outer_after_template = "payments/admin/instructor_activity.html"

    def get_changelist_instance(self, request):
        # The balances of the page's instructors in one grouped query, set on each row before
        # the cells read them (the page's rows are the ones the template iterates).
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        balances = balances_by_instructor(row.pk for row in rows)
        for row in rows:
            row.page_balances = balances.get(row.pk, [])
        return changelist

    @display(description="Instructor", ordering="name")
    def instructor_cell(self, obj):
        return two_line(obj.name, obj.email or "—", clip=True)

    @display(description="Paid by")
    def paid_by_cell(self, obj):
        if obj.stripe_account_id:
            return two_line("Stripe Connect", obj.stripe_account_id, clip=True)
        if obj.bank_account:
            # The whole number is on the instructor's page and in the bank file only.
            return two_line("Bank transfer", mask_account(obj.bank_account), clip=True)
        return format_html('<span class="text-orange-700">{}</span>', NO_BANK_ACCOUNT)

    @display(description="Balance per currency (available · on hold)")
    def balances_cell(self, obj):
        balances = getattr(obj, "page_balances", None)
        if not balances:
            return NO_BALANCE
        return format_html(
            '<span class="flex flex-col gap-0.5">{}</span>',
            format_html_join(
                "",
                '<span data-currency="{}">{}</span>',
                ((b.currency, balance_line(b)) for b in balances),
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        instructor = (
            Instructor.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        )
        extra = {}
        if instructor is not None:
            extra = instructor_page_context(request, instructor)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


def instructor_page_context(request, instructor: Instructor) -> dict:
    """The balances table, the buttons, the latest entries and payouts of an instructor."""
    data = instructor_earnings(instructor=instructor)
    pk = instructor.pk
    can_pay = request.user.has_perm("payments.add_payout")
    can_adjust = request.user.has_perm("payments.add_earningadjustment")
    payout_add = reverse("admin:payments_payout_add")
    # The adjustments' add form reads ?instructor=<id>&currency=<code> (payments/admin/earnings.py).
    adjust_add = reverse("admin:payments_earningadjustment_add")
    currencies = [balance.currency for balance in data.balances] or ["usd"]
    payable = [balance.currency for balance in data.balances if balance.available > 0]
    return {
        "instructor": instructor,
        "balance_rows": [
            {
                "currency": balance.currency.upper(),
                "balance": signed_money(balance.balance, balance.currency),
                "available": signed_money(balance.available, balance.currency),
                "on_hold": signed_money(balance.on_hold, balance.currency),
                "negative": balance.available < 0 or balance.balance < 0,
                "payout_url": f"{payout_add}?instructor={pk}&currency={balance.currency}"
                if can_pay and balance.available > 0
                else "",
                "adjust_url": f"{adjust_add}?instructor={pk}&currency={balance.currency}"
                if can_adjust
                else "",
            }
            for balance in data.balances
        ],
        "new_payout_url": f"{payout_add}?instructor={pk}&currency={payable[0]}"
        if can_pay and payable
        else "",
        "adjust_url": f"{adjust_add}?instructor={pk}&currency={currencies[0]}"
        if can_adjust
        else "",
        "entries": [
            {
                "entry": entry,
                # Signed but not red: a payout's negative entry is no clawback.
                "amount": format_money(entry.amount, entry.currency),
                "payment_url": reverse("admin:payments_payment_change", args=[entry.payment_id])
                if entry.payment_id
                else "",
                "payout_url": reverse("admin:payments_payout_change", args=[entry.payout_id])
                if entry.payout_id
                else "",
            }
            for entry in data.entries
        ],
        "all_entries_url": reverse("admin:payments_earningentry_changelist")
        + f"?instructor__id__exact={pk}",
        "payouts": [
            {
                "payout": payout,
                "amount": format_money(payout.amount, payout.currency),
                "status": badge(
                    payout.get_status_display(), PAYOUT_STATUS_COLOURS.get(payout.status, "")
                ),
                "url": reverse("admin:payments_payout_change", args=[payout.pk]),
            }
            for payout in data.payouts
        ],
        "open_payouts": data.open_payouts,
        "all_payouts_url": reverse("admin:payments_payout_changelist") + f"?instructor={pk}",
    }
