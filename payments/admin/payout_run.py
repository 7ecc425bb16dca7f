"""Payout runs (the command, the weekly schedule, the admin): what each created per currency,
its payouts, and the bank-transfer file of its approved bank transfers (a download, audited;
payments/admin/payout_views.py). Read-only."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.decorators import display

from backoffice.admin_cells import two_line
from backoffice.changelist import ChangelistMixin
from backoffice.formats import format_datetime
from payments.models import PayoutRun

from . import payout_views as views
from .filters import CreatedDateRangeFilter


@admin.register(PayoutRun)
class PayoutRunAdmin(ChangelistMixin, ModelAdmin):
    """Every payout run (the command, the weekly schedule): what it created per currency and
    its payouts. Read-only; the bank-transfer file of a run is a download on its row."""

    list_display = ["run_cell", "created_at_cell", "currency_cell", "totals_cell", "bank_file"]
    list_display_links = ["run_cell"]
    list_select_related = ["created_by"]
    list_filter = [("created_at", CreatedDateRangeFilter)]
    list_filter_submit = True
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    readonly_fields = [
        "created_at",
        "created_by",
        "currency_cell",
        "trigger",
        "payouts_created",
        "totals_cell",
        "payouts_link",
        "bank_file",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        # The add page starts a run (payout_views.PayoutRunCreateView): a dry run first.
        return request.user.has_perm(views.PERM_ADD)

    def add_view(self, request, form_url="", extra_context=None):
        return views.PayoutRunCreateView.as_view(model_admin=self)(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "<int:pk>/bank-file/",
                self.admin_site.admin_view(views.RunBankFileView.as_view()),
                name="payments_payoutrun_bank_file",
            ),
            *super().get_urls(),
        ]

    @display(description="Run", ordering="id")
    def run_cell(self, obj):
        who = obj.created_by.get_username() if obj.created_by_id else obj.trigger
        return two_line(f"#{obj.pk}", who, clip="narrow")

    @display(description="Created", ordering="created_at")
    def created_at_cell(self, obj):
        return format_datetime(obj.created_at)

    @display(description="Currency")
    def currency_cell(self, obj):
        return obj.currency.upper() if obj.currency else "all"

    @display(description="Payouts created")
    def totals_cell(self, obj):
        return views.run_totals_text(obj)

    @display(description="Payouts")
    def payouts_link(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}?run={}">{} payout(s)</a>',
            reverse("admin:payments_payout_changelist"),
            obj.pk,
            obj.payouts_created,
        )

    @display(description="Bank-transfer file")
    def bank_file(self, obj):
        return format_html(
            '<a class="text-primary-600 underline" href="{}">CSV</a>', self._bank_file_url(obj.pk)
        )

    def _bank_file_url(self, pk) -> str:
        return self._bank_file_url_pattern.replace("/0/", f"/{pk}/")

    @cached_property
    def _bank_file_url_pattern(self) -> str:
        return reverse("admin:payments_payoutrun_bank_file", args=[0])
