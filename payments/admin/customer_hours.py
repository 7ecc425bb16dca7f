"""The customer page's "Prepaid hours" section: the student's balance page panel
(payments/admin/hours.py) with the newest ledger entries and a link to the balance page.
Shown to whoever may view student balances (every finance role)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html
from unfold.decorators import display

from payments.models import StudentBalance

from .hours import hours_overview_html

CUSTOMER_LEDGER_ROWS = 10
PERM_VIEW_BALANCE = "payments.view_studentbalance"
NO_HOURS = "No prepaid hours."


class CustomerHoursMixin:
    def _shows_hours(self, request, obj) -> bool:
        return obj is not None and request.user.has_perm(PERM_VIEW_BALANCE)

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if self._shows_hours(request, obj):
            fieldsets.append(("Prepaid hours", {"fields": ["hours_panel"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "hours_panel"] if self._shows_hours(request, obj) else fields

    @display(description="Hours")
    def hours_panel(self, obj):
        balance = StudentBalance.objects.filter(customer=obj).first()
        if balance is None:
            return NO_HOURS
        url = reverse("admin:payments_studentbalance_change", args=[balance.pk])
        return format_html(
            '{}<p class="mt-2"><a class="text-primary-600 underline" href="{}" '
            'data-testid="balance-page-link">Balance page</a></p>',
            hours_overview_html(balance, ledger_limit=CUSTOMER_LEDGER_ROWS),
            url,
        )
