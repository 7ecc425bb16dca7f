"""What payments adds to the audit trail's admin (backoffice.AdminAction): the amount through
the money formatter. backoffice sits below payments and never imports it, so the cell comes
from here through backoffice.admin_extensions.admin_extend, as refunds adds to the payment
page. The stored row keeps minor units and the currency code; the page never shows them as
two raw cells ("22300" / "usd")."""

from __future__ import annotations

from unfold.decorators import display

from backoffice.admin_extensions import admin_extend
from backoffice.models import AdminAction

from .display import money

# The raw columns the money cell replaces, wherever the base admin lists them.
RAW_MONEY_COLUMNS = ("amount", "currency")


def _with_money_cell(names) -> list[str]:
    """`names` with "amount" replaced by "amount_cell" and "currency" dropped."""
    result = []
    for name in names:
        if name == "amount":
            result.append("amount_cell")
        elif name not in RAW_MONEY_COLUMNS:
            result.append(name)
    return result


class AuditTrailMoneyMixin:
    def get_list_display(self, request):
        return _with_money_cell(super().get_list_display(request))

    def get_fields(self, request, obj=None):
        return _with_money_cell(super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        # The audit trail is read-only; a read-only page shows every field it lists.
        return _with_money_cell([*super().get_readonly_fields(request, obj), *RAW_MONEY_COLUMNS])

    @display(description="Amount", ordering="amount")
    def amount_cell(self, obj):
        if obj.amount is None:
            return "—"
        return money(obj.amount, obj.currency)


admin_extend(AdminAction, AuditTrailMoneyMixin)
