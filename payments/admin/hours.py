"""Prepaid hours in the admin: the student balances (the balance page: figures, packages with
days to expiry, the ledger), the ledger itself, the lessons the booking system reported and
their import page. Everything here reads; the only write is the import, which calls the
import service (payments/lessons.py) with the permission payments.import_lessons."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from import_export.formats.base_formats import CSV, XLSX
from import_export.resources import Resource
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.contrib.import_export.forms import ImportForm
from unfold.decorators import action, display

from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from payments import hours_selectors, lessons
from payments.models import BalanceEntry, Lesson, StudentBalance

from .display import customer_label

PERM_IMPORT_LESSONS = "payments.import_lessons"
IMPORT_FORMATS = (CSV, XLSX)
# The uploaded file waits here between the preview and the confirmation (one machine's
# temporary folder: with several web servers, the preview and the confirmation must reach
# the same one, or point this at a shared folder).
UPLOAD_PREFIX = "lessons-import-"

ERR_UPLOAD_GONE = (
    "The previewed file is no longer there (already imported, or the preview expired or "
    "was not yours): upload it again."
)
# Your previews' tokens, in your session: only who previewed a file may confirm it.
SESSION_PREVIEWS = "payments:lesson_import_previews"
# Previews nobody confirmed (they hold students' e-mails) are deleted after this long, by
# the next preview.
STASH_MAX_AGE_SECONDS = 3600
_TOKEN_RE = re.compile(re.escape(UPLOAD_PREFIX) + r"[A-Za-z0-9_]+")
ERR_NO_IMPORT_PERMISSION = "You may not import lessons."
MSG_IMPORTED = "Imported {rows} rows: {counts}."

ENTRY_KIND_COLOURS = {
    BalanceEntry.Kind.PURCHASE: "success",
    BalanceEntry.Kind.ADJUSTMENT: "info",
    BalanceEntry.Kind.USAGE: "primary",
    BalanceEntry.Kind.RESERVATION: "warning",
    BalanceEntry.Kind.RELEASE: "info",
    BalanceEntry.Kind.EXPIRY: "danger",
    BalanceEntry.Kind.REFUND: "danger",
}
LESSON_STATUS_COLOURS = {
    Lesson.Status.RESERVED: "warning",
    Lesson.Status.CONSUMED: "success",
    Lesson.Status.CANCELED: "info",
}

STUDENT_SEARCH = SearchSpec(
    ids=(("cus_", "customer__stripe_id"),),
    text=("customer__name", "customer__email"),
    help_text=(
        "Searches: student name or e-mail (any part, any case); a whole Stripe customer "
        "id (cus_) in any case."
    ),
)


def hours_text(minutes: int) -> str:
    return f"{minutes / 60:g} h"


def hours_overview_html(balance: StudentBalance, *, ledger_limit: int = 50) -> str:
    """The balance page's panel (also under the customer page): figures, packages, ledger."""
    now = timezone.now()
    figures = hours_selectors.balance_figures(balance)
    entries = hours_selectors.balance_ledger(balance, limit=ledger_limit)
    return render_to_string(
        "payments/admin/hours_overview.html",
        {
            "balance": balance,
            "figures": [
                ("Purchased", hours_text(figures.purchased), "purchased"),
                ("Adjusted", hours_text(figures.adjusted), "adjusted"),
                ("Consumed", hours_text(figures.consumed), "consumed"),
                ("Reserved", hours_text(figures.reserved), "reserved"),
                ("Expired", hours_text(figures.expired), "expired"),
                ("Refunded", hours_text(figures.refunded), "refunded"),
                ("Remaining", hours_text(figures.remaining), "remaining"),
            ],
            "negative": figures.remaining < 0,
            "packages": [
                {
                    "package": row.package,
                    "hours": hours_text(row.package.minutes),
                    "left": hours_text(row.package.remaining),
                    "days_left": row.days_left,
                    "state": row.state,
                    "label": hours_selectors.PACKAGE_STATE_LABELS[row.state],
                }
                for row in hours_selectors.balance_packages(balance, now=now)
            ],
            "near_days": hours_selectors.near_expiry_days(),
            "entry_rows": [
                {
                    "created_at": entry.created_at,
                    "kind": entry.kind,
                    "kind_label": entry.get_kind_display(),
                    "hours": f"{entry.minutes / 60:+g} h",
                    "reference": entry.reference,
                    "note": entry.note,
                }
                for entry in entries
            ],
            "entries": entries,
            "more_entries": len(entries) == ledger_limit,
            "ledger_url": reverse("admin:payments_balanceentry_changelist")
            + f"?balance__id__exact={balance.pk}",
        },
    )


class NegativeBalanceFilter(admin.SimpleListFilter):
    title = "balance"
    parameter_name = "balance"

    def lookups(self, request, model_admin):
        return [("negative", "Negative (owes hours)"), ("positive", "Hours left")]

    def queryset(self, request, queryset):
        if self.value() == "negative":
            return queryset.filter(minutes__lt=0)
        if self.value() == "positive":
            return queryset.filter(minutes__gt=0)
        return queryset


@admin.register(StudentBalance)
class StudentBalanceAdmin(ChangelistMixin, ModelAdmin):
    """Prepaid tutoring hours per student. Changed only through payments/hours.py (purchases,
    lessons, expiries, refunds, adjustments), each leaving a BalanceEntry, so the admin only
    reads. Every finance role may see it (view_studentbalance, fixtures/groups.json)."""

    list_display = ["customer", "hours", "updated_at"]
    list_select_related = ["customer"]
    list_filter = [NegativeBalanceFilter]
    search_spec = STUDENT_SEARCH
    ordering = ["minutes", "id"]
    fields = ["customer", "hours_overview"]
    readonly_fields = ["customer", "hours_overview"]
    # The student's hours adjustments (pending ones too) and the request form
    # (payments/templatetags/customer_adjustments.py).
    change_form_outer_after_template = "payments/admin/student_balance_adjustments.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @display(
        description="Hours",
        ordering="minutes",
        label={"negative": "danger", "zero": "info", "positive": "success"},
    )
    def hours(self, obj):
        key = "negative" if obj.minutes < 0 else "positive" if obj.minutes else "zero"
        return key, f"{obj.minutes / 60:+g} h"

    @display(description="Prepaid hours")
    def hours_overview(self, obj):
        return hours_overview_html(obj)


@admin.register(BalanceEntry)
class BalanceEntryAdmin(ChangelistMixin, ModelAdmin):
    """The hours ledger: every change to every student's hours, newest first. Read-only."""

    list_display = ["created_at", "student", "kind_badge", "hours", "reference", "note"]
    list_select_related = ["balance__customer"]
    list_filter = [("kind", ChoicesDropdownFilter)]
    search_spec = SearchSpec(
        ids=(("cus_", "balance__customer__stripe_id"),),
        text=("balance__customer__name", "balance__customer__email", "reference"),
        help_text=(
            "Searches: student name or e-mail, or a reference (lesson:<booking id>, "
            "hours:purchase:pi_...), any part, any case; a whole Stripe customer id (cus_)."
        ),
    )
    ordering = ["-created_at", "-id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @display(description="Student", ordering="balance__customer__email")
    def student(self, obj):
        return customer_label(obj.balance.customer)

    @display(description="Kind", ordering="kind", label=ENTRY_KIND_COLOURS)
    def kind_badge(self, obj):
        return obj.kind, obj.get_kind_display()

    @display(description="Hours", ordering="minutes")
    def hours(self, obj):
        return f"{obj.minutes / 60:+g} h"


class LessonImportForm(ImportForm):
    """import-export's upload form in Unfold's look (file + format); the rows are read by
    payments/lessons.py, streamed, not by import-export's in-memory datasets."""


class LessonColumns(Resource):
    """Only names the columns on the import page (import-export's field list)."""

    @classmethod
    def get_display_name(cls):
        return "Lessons"


def _upload_dir() -> str:
    return tempfile.gettempdir()


def _stash(upload) -> str:
    """Keep the upload for the confirmation; returns its token (the file's name)."""
    handle, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=_upload_dir())
    with os.fdopen(handle, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return os.path.basename(name)


def _stashed_path(token: str) -> str | None:
    name = os.path.basename(token or "")
    if not _TOKEN_RE.fullmatch(name):
        return None
    full = os.path.join(_upload_dir(), name)
    return full if os.path.isfile(full) else None


def _claim(path_: str) -> str | None:
    """Move the stashed file aside for one confirmation: of two confirmations at once, one
    renames it, the other finds it gone (None)."""
    claimed = f"{path_}.importing"
    try:
        os.rename(path_, claimed)
    except FileNotFoundError:
        return None
    return claimed


def _delete_abandoned_previews() -> None:
    cutoff = time.time() - STASH_MAX_AGE_SECONDS
    directory = _upload_dir()
    for entry in os.scandir(directory):
        if not entry.name.startswith(UPLOAD_PREFIX):
            continue
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
        except FileNotFoundError:  # another preview deleted it first
            pass


class ConfirmLessonImportForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)
    format = forms.ChoiceField(choices=[("csv", "csv"), ("xlsx", "xlsx")], widget=forms.HiddenInput)
    file_name = forms.CharField(widget=forms.HiddenInput, required=False)


@admin.register(Lesson)
class LessonAdmin(ChangelistMixin, ModelAdmin):
    """Lessons as the booking system reported them; imported from a file on the import page
    (or through POST /api/v1/lessons/)."""

    list_display = ["booking_id", "student", "minutes_display", "lesson_date", "status_badge"]
    list_select_related = ["customer"]
    list_filter = [("status", ChoicesDropdownFilter), "source", ("lesson_date", RangeDateFilter)]
    list_filter_submit = True
    search_spec = SearchSpec(
        text=("booking_id", "customer__name", "customer__email"),
        ids=(("cus_", "customer__stripe_id"),),
        help_text=(
            "Searches: booking id, student name or e-mail (any part, any case); a whole Stripe "
            "customer id (cus_) in any case."
        ),
    )
    ordering = ["-lesson_date", "-id"]
    show_full_result_count = False
    actions_list = ["import_lessons"]
    readonly_fields = ["booking_id", "customer", "minutes", "lesson_date", "status", "source"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_import_lessons_permission(self, request):
        return request.user.has_perm(PERM_IMPORT_LESSONS)

    @display(description="Student", ordering="customer__email")
    def student(self, obj):
        return customer_label(obj.customer)

    @display(description="Minutes", ordering="minutes")
    def minutes_display(self, obj):
        return obj.minutes

    @display(description="Status", ordering="status", label=LESSON_STATUS_COLOURS)
    def status_badge(self, obj):
        return obj.status, obj.get_status_display()

    # A GET link to the import page; the import itself is a POST there.
    @action(description="Import lessons", icon="upload_file", permissions=["import_lessons"])
    def import_lessons(self, request):
        return redirect(reverse("admin:payments_lesson_import"))

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="payments_lesson_import"), *super().get_urls()]

    def import_view(self, request):
        """Upload -> preview (every row checked, nothing applied; bad rows listed row by
        row) -> confirm (the same file applied, all or nothing)."""
        if not self.has_import_lessons_permission(request):
            raise PermissionDenied(ERR_NO_IMPORT_PERMISSION)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import lessons",
            "fields_list": [("Lessons", list(lessons.COLUMNS))],
            "statuses": lessons.STATUSES,
            "changelist_url": reverse("admin:payments_lesson_changelist"),
        }
        form = LessonImportForm(IMPORT_FORMATS, [LessonColumns], data=None)
        if request.method == "POST" and "confirm" in request.POST:
            return self._confirm(request, context, form)
        if request.method == "POST":
            form = LessonImportForm(
                IMPORT_FORMATS, [LessonColumns], data=request.POST, files=request.FILES
            )
            if form.is_valid():
                return self._preview(request, context, form)
        context["form"] = form
        return TemplateResponse(request, "payments/admin/lesson_import.html", context)

    @staticmethod
    def _format(form) -> str:
        chosen = IMPORT_FORMATS[int(form.cleaned_data["format"])]
        return "xlsx" if chosen is XLSX else "csv"

    def _run(self, request, path_: str, fmt: str, *, dry_run: bool, file_name: str):
        with open(path_, "rb") as upload:
            return lessons.lessons_import(
                lessons.read_lesson_file(upload, fmt),
                acting_user=request.user,
                dry_run=dry_run,
                client=client_info_from_request(request),
                file_name=file_name,
            )

    def _preview(self, request, context, form):
        upload = form.cleaned_data["import_file"]
        fmt = self._format(form)
        _delete_abandoned_previews()
        token = _stash(upload)
        try:
            result = self._run(
                request, _stashed_path(token), fmt, dry_run=True, file_name=upload.name
            )
        except lessons.LessonFileError as exc:
            os.unlink(_stashed_path(token))
            form.add_error("import_file", str(exc))
            context["form"] = form
            return TemplateResponse(request, "payments/admin/lesson_import.html", context)
        if result.error_count:
            os.unlink(_stashed_path(token))
        else:  # the last 10 previews (tabs) stay confirmable
            request.session[SESSION_PREVIEWS] = [
                *request.session.get(SESSION_PREVIEWS, [])[-9:],
                token,
            ]
        context.update(
            form=form,
            result=result,
            confirm_form=None
            if result.error_count
            else ConfirmLessonImportForm(
                initial={"token": token, "format": fmt, "file_name": upload.name}
            ),
        )
        return TemplateResponse(request, "payments/admin/lesson_import.html", context)

    def _confirm(self, request, context, form):
        confirm = ConfirmLessonImportForm(request.POST)
        token = confirm.data.get("token", "")
        mine = token in request.session.get(SESSION_PREVIEWS, [])
        path_ = _stashed_path(token) if confirm.is_valid() and mine else None
        path_ = _claim(path_) if path_ is not None else None
        if path_ is None:
            messages.error(request, ERR_UPLOAD_GONE)
            return redirect(reverse("admin:payments_lesson_import"))
        request.session[SESSION_PREVIEWS] = [
            t for t in request.session.get(SESSION_PREVIEWS, []) if t != token
        ]
        try:
            result = self._run(
                request,
                path_,
                confirm.cleaned_data["format"],
                dry_run=False,
                file_name=confirm.cleaned_data["file_name"],
            )
        finally:
            # missing_ok: the abandoned-previews sweep may have been first on a slow import.
            Path(path_).unlink(missing_ok=True)
        if result.error_count:
            # The bookings changed between the preview and the confirmation: nothing applied.
            context.update(form=form, result=result)
            return TemplateResponse(request, "payments/admin/lesson_import.html", context)
        counts = ", ".join(f"{n} {k}" for k, n in result.counts.items())
        messages.success(request, MSG_IMPORTED.format(rows=result.rows, counts=counts))
        return redirect(reverse("admin:payments_lesson_changelist"))
