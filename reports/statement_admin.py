"""What reports adds to the instructor page: the monthly statement (a page with a month and
currency picker, and its PDF) and the earnings ledger's export for accounting (CSV / JSON).

Added to the Instructor admin by reports/admin.py with admin_extend, so payments never imports
reports. Everything here is a read-only GET:

- `<pk>/statement/?currency=usd&month=2026-11`: the page ("Statement" button on the instructor
  page); without parameters, the currency and month of the instructor's latest entry.
- `<pk>/statement/pdf/?currency=usd&month=2026-11`: the same statement as a PDF download.
- `ledger-export/?instructor=<pk>&currency=usd&date_from=2026-11-01&date_to=2026-11-30&format=csv`:
  the ledger, streamed; without `format`, a form to choose the filters.

Statements need payments.view_earningentry; the export also needs reports.export_payments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from unfold.decorators import action

from payments.models import Instructor
from payments.money import is_known_currency

from .ledger_export import (
    ERR_NO_PERMISSION,
    VIEW_LEDGER_PERMISSION,
    LedgerExportForm,
    ledger_export_response,
    may_export_ledger,
)
from .statement_pdf import MIXED_SECTIONS, instructor_statement_pdf, statement_filename
from .statements import (
    Statement,
    current_month,
    instructor_statement,
    month_label,
    months_between,
    parse_month,
    statement_periods,
)

ERR_NO_STATEMENT_PERMISSION = "You may not see instructors' statements."
ERR_BAD_MONTH_CHOICE = (
    "Not a month with a statement: {value!r} (use YYYY-MM, this month or earlier)."
)
WARN_UNKNOWN_STATEMENT_CURRENCY = (
    "This instructor has no entries in {currency}: showing {shown} instead."
)
# The page lists at most this many entries per group (the totals count them all); the PDF and
# the export hold every entry.
PAGE_LINES_PER_SECTION = 200
DEFAULT_CURRENCY = "usd"


@dataclass(frozen=True)
class StatementChoice:
    """The picker's state: the chosen currency and month, and what may be chosen."""

    currencies: list[str]
    months: list[date]
    currency: str
    month: date


def statement_choice(
    request, instructor: Instructor, *, warn: bool = True
) -> StatementChoice | None:
    """Currency and month from the query string, validated against the instructor's entries;
    a bad value is replaced by the default, the latest month with entries (with a message on
    the page when `warn`). None when the instructor has no entries at all."""
    periods = {period.currency: period for period in statement_periods(instructor=instructor)}
    if not periods:
        return None
    latest = max(periods.values(), key=lambda period: (period.last_month, period.currency))
    asked = (request.GET.get("currency") or "").strip().lower()
    currency = asked if asked in periods else latest.currency
    if asked and asked not in periods and warn:
        messages.warning(
            request,
            WARN_UNKNOWN_STATEMENT_CURRENCY.format(
                currency=asked.upper() if is_known_currency(asked) else repr(asked),
                shown=currency.upper(),
            ),
        )
    period = periods[currency]
    this_month = current_month()
    month = min(period.last_month, this_month)
    raw_month = request.GET.get("month")
    if raw_month:
        try:
            asked_month = parse_month(raw_month)
        except ValueError:
            asked_month = None
        # A month that has not begun has no statement yet.
        if asked_month is not None and asked_month <= this_month:
            month = asked_month
        elif warn:
            messages.warning(request, ERR_BAD_MONTH_CHOICE.format(value=raw_month))
    # The instructor's months up to now, and the month asked for if it is older.
    months = months_between(period.first_month, this_month)
    if month not in months:
        months.append(month)
    return StatementChoice(
        currencies=sorted(periods), months=months, currency=currency, month=month
    )


class InstructorStatementAdminMixin:
    """The statement page and PDF, and the ledger export, on the Instructor admin."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Added to whatever buttons the instructor page already has (payments' own admin
        # and other apps' mixins may set actions_detail too).
        if "statement" not in self.actions_detail:
            self.actions_detail = [*self.actions_detail, "statement"]
        if "ledger_export" not in self.actions_list:
            self.actions_list = [*self.actions_list, "ledger_export"]

    def has_ledger_export_permission(self, request) -> bool:
        return may_export_ledger(request.user)

    def has_statement_permission(self, request, object_id=None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(VIEW_LEDGER_PERMISSION))

    def get_urls(self):
        return [
            path(
                "<path:object_id>/statement/pdf/",
                self.admin_site.admin_view(self.statement_pdf_view),
                name="payments_instructor_statement_pdf",
            ),
            *super().get_urls(),
        ]

    def _instructor_or_403(self, request, object_id) -> Instructor:
        if not self.has_statement_permission(request):
            raise PermissionDenied(ERR_NO_STATEMENT_PERMISSION)
        if not str(object_id).isdigit():
            raise Http404  # a path that is no id is no instructor (not a 500)
        return get_object_or_404(Instructor, pk=int(object_id))

    # --- the statement page: a detail action (a GET link on the instructor page) ---------

    @action(
        description="Statement",
        url_path="statement",
        icon="receipt_long",
        permissions=["statement"],
    )
    def statement(self, request, object_id):
        """GET, read-only: the month's statement with the picker, PDF and export links."""
        instructor = self._instructor_or_403(request, object_id)
        choice = statement_choice(request, instructor)
        statement = (
            instructor_statement(
                instructor=instructor, currency=choice.currency, month=choice.month
            )
            if choice
            else None
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Statement: {instructor.name}",
            "opts": self.model._meta,
            "original": instructor,
            "instructor": instructor,
            "choice": choice,
            "statement": statement,
            "month_options": [(m.strftime("%Y-%m"), month_label(m)) for m in choice.months]
            if choice
            else [],
            "sections": self._page_sections(statement) if statement else [],
            "summary": self._summary_rows(statement) if statement else [],
            "change_url": reverse("admin:payments_instructor_change", args=[instructor.pk]),
            "pdf_url": self._statement_url(statement, pdf=True) if statement else "",
            "export_links": self._export_links(request, statement) if statement else [],
        }
        return TemplateResponse(request, "reports/admin/instructor_statement.html", context)

    def statement_pdf_view(self, request, object_id):
        """GET, read-only: the chosen statement as a PDF download."""
        instructor = self._instructor_or_403(request, object_id)
        choice = statement_choice(request, instructor, warn=False)
        if choice is None:
            # No entries at all: an empty statement of the month asked for (or this one).
            raw_currency = (request.GET.get("currency") or "").lower()
            try:
                month = parse_month(request.GET.get("month") or "")
            except ValueError:
                month = current_month()
            choice = StatementChoice(
                currencies=[],
                months=[],
                currency=raw_currency if is_known_currency(raw_currency) else DEFAULT_CURRENCY,
                month=month,
            )
        statement = instructor_statement(
            instructor=instructor, currency=choice.currency, month=choice.month
        )
        response = HttpResponse(instructor_statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{statement_filename(statement)}"'
        response["Cache-Control"] = "no-store"
        return response

    def _statement_url(self, statement: Statement, *, pdf: bool = False) -> str:
        name = (
            "admin:payments_instructor_statement_pdf"
            if pdf
            else "admin:payments_instructor_statement"
        )
        query = urlencode({"currency": statement.currency, "month": f"{statement.month:%Y-%m}"})
        return f"{reverse(name, args=[statement.instructor.pk])}?{query}"

    def _export_links(self, request, statement: Statement) -> list[tuple[str, str]]:
        if not may_export_ledger(request.user):
            return []
        base = reverse("admin:payments_instructor_ledger_export")
        query = {
            "instructor": statement.instructor.pk,
            "currency": statement.currency,
            "date_from": statement.start.date().isoformat(),
            "date_to": statement.last_day.isoformat(),
        }
        return [
            (label, f"{base}?{urlencode({**query, 'format': fmt})}")
            for fmt, label in (("csv", "Entries as CSV"), ("json", "Entries as JSON"))
        ]

    @staticmethod
    def _summary_rows(statement: Statement) -> list[dict]:
        rows = [
            {
                "label": f"Opening balance on {statement.start.date().isoformat()}",
                "amount": statement.opening_balance,
            }
        ]
        for section in statement.sections:
            rows.append(
                {
                    "label": f"{section.title} ({len(section.lines):,})",
                    "amount": section.total,
                }
            )
        closing = (
            f"Closing balance on {statement.last_day.isoformat()}"
            if statement.is_complete
            else "Balance now (month to date)"
        )
        rows += [
            {
                "label": closing,
                "amount": statement.closing_balance,
                "strong": True,
            },
            {
                "label": "of which available for payout",
                "amount": statement.closing_available,
                "sub": True,
            },
            {"label": "of which still on hold", "amount": statement.closing_on_hold, "sub": True},
        ]
        for row in rows:
            row["text"] = statement.money(row["amount"])
            row["negative"] = row["amount"] < 0
        return rows

    @staticmethod
    def _page_sections(statement: Statement) -> list[dict]:
        sections = []
        for section in statement.sections:
            shown = section.lines[:PAGE_LINES_PER_SECTION]
            sections.append(
                {
                    "key": section.key,
                    "mixed": section.key in MIXED_SECTIONS,
                    "title": section.title,
                    "total": statement.money(section.total),
                    "count": len(section.lines),
                    "hidden": len(section.lines) - len(shown),
                    "lines": [
                        {
                            "line": line,
                            "amount": statement.money(line.amount),
                            "negative": line.amount < 0,
                            "payment_amount": statement.money(line.payment_amount)
                            if line.payment_amount is not None
                            else "",
                        }
                        for line in shown
                    ],
                }
            )
        return sections

    # --- the ledger export ---------------------------------------------------------------

    @action(
        description="Export earnings ledger",
        url_path="ledger-export",
        icon="download",
        permissions=["ledger_export"],
    )
    def ledger_export(self, request):
        """GET: with `format`, the filtered ledger streamed as CSV or JSON (a bad filter: 400
        and the form with its message); without, the form."""
        if not may_export_ledger(request.user):
            raise PermissionDenied(ERR_NO_PERMISSION)
        form = LedgerExportForm(request.GET if "format" in request.GET else None)
        if form.is_bound and form.is_valid():
            return ledger_export_response(form.cleaned_data)
        context = {
            **self.admin_site.each_context(request),
            "title": "Export the earnings ledger",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(
            request,
            "reports/admin/ledger_export.html",
            context,
            status=400 if form.is_bound else 200,
        )
