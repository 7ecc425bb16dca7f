"""The instructors' earnings ledger for accounting: every EarningEntry, filtered by instructor,
currency and a range of days, streamed as CSV or JSON with flat memory whatever the size.

Columns, units and time zone are reports.export_columns.EARNING_ENTRY_COLUMNS (money in major
units of the row's currency plus `amount_minor`, date-times in the site zone named in
`time_zone`), like the other exports; text cells are neutralised against spreadsheet
formulas. Allowed to staff with the export permission (reports.export_payments) who may also
read the ledger (payments.view_earningentry). The query parameters are validated here: a bad
one answers 400 with the form's message and exports nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django import forms
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseBadRequest
from django.utils import timezone
from unfold.decorators import action
from unfold.widgets import INPUT_CLASSES, UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from payments.models import EarningEntry, Instructor
from payments.money import is_known_currency

from .export_columns import EARNING_ENTRY_COLUMNS
from .exports import (
    ERR_BAD_FILTERS,
    KEEP_FILTERS_ATTRS,
    ExportAdminMixin,
    column_resource,
    export_filename,
    has_export_permission,
    streaming_csv_response,
    streaming_json_response,
)

VIEW_LEDGER_PERMISSION = "payments.view_earningentry"
FORMATS = (("csv", "CSV"), ("json", "JSON"))
ERR_CURRENCY = "Not a currency we know: {value!r} (a three-letter code such as usd)."
ERR_RANGE = "The first day is after the last day."
ERR_NO_PERMISSION = "You may not export the earnings ledger."


def may_export_ledger(user) -> bool:
    return has_export_permission(user) and user.has_perm(VIEW_LEDGER_PERMISSION)


def _day_input() -> forms.DateInput:
    # The browser's own date picker; the value it sends is YYYY-MM-DD.
    return forms.DateInput(
        attrs={"type": "date", "class": " ".join(INPUT_CLASSES)}, format="%Y-%m-%d"
    )


class LedgerExportForm(forms.Form):
    """The export's filters, all optional (none: the whole ledger). Days are whole days of
    the site time zone, both ends included."""

    instructor = forms.ModelChoiceField(
        queryset=Instructor.objects.order_by("name", "id"),
        required=False,
        empty_label="All instructors",
        widget=UnfoldAdminSelectWidget,
    )
    currency = forms.CharField(
        required=False,
        max_length=3,
        help_text="A three-letter code (usd, eur, jpy); empty for every currency.",
        widget=UnfoldAdminTextInputWidget,
    )
    date_from = forms.DateField(required=False, label="From day", widget=_day_input())
    date_to = forms.DateField(required=False, label="To day (included)", widget=_day_input())
    format = forms.ChoiceField(choices=FORMATS, initial="csv", widget=UnfoldAdminSelectWidget)

    def clean_currency(self) -> str:
        value = (self.cleaned_data.get("currency") or "").strip().lower()
        if value and not is_known_currency(value):
            raise forms.ValidationError(ERR_CURRENCY.format(value=value))
        return value

    def clean(self):
        data = super().clean()
        first, last = data.get("date_from"), data.get("date_to")
        if first and last and first > last:
            raise forms.ValidationError(ERR_RANGE)
        return data


def _day_start(day: date) -> datetime:
    zone = timezone.get_default_timezone()
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def earning_ledger_queryset(
    *,
    instructor: Instructor | None = None,
    currency: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[EarningEntry]:
    """Entries by `occurred_at` in [date_from, date_to] (site-zone days, inclusive), oldest
    first. Ordered by (occurred_at, id) so two exports of the same range list the same rows
    in the same order."""
    entries = EarningEntry.objects.all()
    if instructor is not None:
        entries = entries.filter(instructor=instructor)
    if currency:
        entries = entries.filter(currency=currency)
    if date_from:
        entries = entries.filter(occurred_at__gte=_day_start(date_from))
    if date_to:
        entries = entries.filter(occurred_at__lt=_day_start(date_to + timedelta(days=1)))
    return entries.order_by("occurred_at", "id")


def ledger_export_filename(data: dict, extension: str) -> str:
    """earnings-ledger[-i<instructor>][-<currency>][-<from>][-to-<to>].<ext>"""
    parts = ["earnings-ledger"]
    if data.get("instructor") is not None:
        parts.append(f"i{data['instructor'].pk}")
    if data.get("currency"):
        parts.append(data["currency"])
    if data.get("date_from"):
        parts.append(data["date_from"].isoformat())
    if data.get("date_to"):
        parts.append(f"to-{data['date_to'].isoformat()}")
    return f"{'-'.join(parts)}.{extension}"


def ledger_export_response(data: dict):
    """The streamed file for a valid LedgerExportForm's cleaned data."""
    queryset = earning_ledger_queryset(
        instructor=data.get("instructor"),
        currency=data.get("currency") or "",
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
    )
    extension = data.get("format") or "csv"
    respond = streaming_json_response if extension == "json" else streaming_csv_response
    return respond(
        queryset, EARNING_ENTRY_COLUMNS, filename=ledger_export_filename(data, extension)
    )


EarningEntryResource = column_resource(
    "EarningEntryResource",
    EarningEntry,
    EARNING_ENTRY_COLUMNS,
    related=("instructor", "payment"),
    doc="The earnings ledger, one row per entry; signed amounts in major units of `currency`.",
)


class EarningLedgerExportAdminMixin(ExportAdminMixin):
    """Added to the earnings ledger's changelist by reports/admin.py: exactly the filtered
    and searched list as a streamed CSV or JSON, and import-export's formats; for staff who
    may export and read the ledger. (The instructors' page has the same export with its own
    form: instructor, currency, days.)"""

    actions_list = ["export_csv_stream", "export_json_stream"]
    resource_classes = [EarningEntryResource]
    stream_columns = EARNING_ENTRY_COLUMNS
    stream_filename = "earnings-ledger"

    def has_export_permission(self, request):
        return may_export_ledger(request.user)

    @action(
        description="Export JSON (streamed, any size)",
        icon="data_object",
        permissions=["export"],
        attrs=KEEP_FILTERS_ATTRS,
    )
    def export_json_stream(self, request):
        """GET, no side effects: the filtered changelist as a JSON array, streamed."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_export_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(ERR_BAD_FILTERS)
        return streaming_json_response(
            queryset, self.stream_columns, filename=export_filename(self.stream_filename, "json")
        )
