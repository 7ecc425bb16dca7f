"""django-q2's operations screens in the admin's language. backoffice/admin.py gives them
Unfold's look; here the Scheduled jobs page says, per job, what staff need: its name, what it
does (the registry in management/schedules.py), how often in words, when it last ran and how
that ended, and when it runs next; the task lists name each task after its job.

Schedules not in the registry (a webhook retry, the webhook safety net a payments migration
installs) show their stored name and the first line of their function's docstring.

A schedule's job is chosen from the job registry (management/schedule_rules.py states the rule
and where else it is checked); every add, change and delete is audited. The raw task and
queue screens (successes, failures, django-q2's ORM queue) are for superusers only: they show
and resubmit any task's function and arguments.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.text import Truncator
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success, Task
from unfold.admin import ModelAdmin
from unfold.decorators import display
from unfold.widgets import UnfoldAdminSelectWidget

from backoffice.audit import audit_record, client_info_from_request
from backoffice.formats import format_datetime

from .schedule_rules import schedule_problems
from .schedules import (
    interval_in_words,
    job_schedule_by_name,
    repeats_in_words,
    schedulable_functions,
)

NOT_RUN_YET = "Not run yet"
RESULT_SUCCEEDED = "Succeeded"
RESULT_FAILED = "Failed"

AUDIT_SCHEDULE_CREATE = "schedule.create"
AUDIT_SCHEDULE_CHANGE = "schedule.change"
AUDIT_SCHEDULE_DELETE = "schedule.delete"

# What the form edits. Not the result hook (schedules run none) nor django-q2's
# intended_date_kwarg (no job of ours takes it).
SCHEDULE_FORM_FIELDS = [
    "name",
    "func",
    "args",
    "kwargs",
    "schedule_type",
    "minutes",
    "cron",
    "repeats",
    "next_run",
    "cluster",
]


def _when(value):
    # One format on every page (backoffice/formats.py), on one line.
    if value is None:
        return "—"
    return format_html('<span class="whitespace-nowrap">{}</span>', format_datetime(value))


def _func_summary(func: str) -> str:
    """The first line of the scheduled function's docstring, or "" (a stale path says so)."""
    try:
        doc = import_string(func).__doc__ or ""
    except (ImportError, AttributeError, ValueError):
        return f"Unknown function {func}"
    return " ".join(doc.strip().split("\n\n")[0].split())


def job_title(name: str | None, fallback: str = "") -> str:
    """What staff call the job behind a schedule or task group `name`."""
    job = job_schedule_by_name().get(name or "")
    if job is not None and job.title:
        return job.title
    return name or fallback


class ScheduleForm(forms.ModelForm):
    """A schedule names a job from the registry (a choice list) with arguments it takes."""

    func = forms.ChoiceField(label="Job", widget=UnfoldAdminSelectWidget)

    class Meta:
        model = Schedule
        fields = SCHEDULE_FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read at call time: the registry's titles come from settings.
        self.fields["func"].choices = [("", "---------")] + [
            (func, f"{title} ({func})") for func, title in schedulable_functions().items()
        ]

    def clean(self):
        cleaned = super().clean()
        if "func" not in cleaned:
            return cleaned  # not a choice: the field says so
        problems = schedule_problems(
            func=cleaned["func"],
            args=cleaned.get("args"),
            kwargs=cleaned.get("kwargs"),
            intended_date_kwarg=self.instance.intended_date_kwarg,
        )
        for field, message in problems.items():
            if field not in self.errors:
                self.add_error(field if field in self.fields else None, message)
        return cleaned

    def save(self, commit=True):
        # A hook set outside this form (SQL) goes: schedules run none.
        self.instance.hook = None
        return super().save(commit=commit)


def _audit_value(value) -> str | int | None:
    return value if value is None or isinstance(value, int) else str(value)


def _schedule_details(obj) -> dict:
    return {field: _audit_value(getattr(obj, field)) for field in SCHEDULE_FORM_FIELDS}


class ScheduleAdmin(q_admin.ScheduleAdmin, ModelAdmin):
    list_display = [
        "job_cell",
        "runs_cell",
        "interval_cell",
        "last_run_cell",
        "last_result_cell",
        "next_run_cell",
        "repeats_cell",
    ]
    list_display_links = ["job_cell"]
    list_filter = ["schedule_type", "cluster"]
    ordering = ["name", "id"]
    form = ScheduleForm
    fields = SCHEDULE_FORM_FIELDS

    def save_model(self, request, obj, form, change):
        # The admin runs this inside the change view's transaction: row and audit row commit
        # together.
        super().save_model(request, obj, form, change)
        if change:
            changed = {
                field: [_audit_value(form.initial.get(field)), _audit_value(getattr(obj, field))]
                for field in form.changed_data
            }
            details = {"changed": changed}
        else:
            details = _schedule_details(obj)
        audit_record(
            acting_user=request.user,
            action=AUDIT_SCHEDULE_CHANGE if change else AUDIT_SCHEDULE_CREATE,
            target=obj,
            details=details,
            client=client_info_from_request(request),
        )

    def _audit_delete(self, request, obj):
        audit_record(
            acting_user=request.user,
            action=AUDIT_SCHEDULE_DELETE,
            target=obj,
            details=_schedule_details(obj),
            client=client_info_from_request(request),
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_delete(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self._audit_delete(request, obj)
            super().delete_queryset(request, queryset)

    def get_queryset(self, request):
        # django-q2 annotates the last task's id, name and success; add when it ended.
        last_task = Task.objects.filter(id=OuterRef("task"))
        return (
            super()
            .get_queryset(request)
            .annotate(task_stopped=Subquery(last_task.values("stopped")[:1]))
        )

    @display(description="Job", ordering="name")
    def job_cell(self, obj):
        title = job_title(obj.name, fallback=f"Schedule #{obj.pk}")
        if title != (obj.name or ""):
            return format_html(
                '<span class="flex flex-col"><strong class="font-normal">{}</strong>'
                '<span class="text-xs text-base-500">{}</span></span>',
                title,
                obj.name or "",
            )
        return title

    @display(description="What it does")
    def runs_cell(self, obj):
        job = job_schedule_by_name().get(obj.name or "")
        summary = job.description if job is not None and job.description else ""
        return format_html(
            '<span class="flex flex-col"><span>{}</span>'
            '<code class="text-xs text-base-500">{}</code></span>',
            summary or _func_summary(obj.func),
            obj.func,
        )

    @display(description="Runs")
    def interval_cell(self, obj):
        return interval_in_words(
            schedule_type=obj.schedule_type, minutes=obj.minutes, cron=obj.cron
        )

    @display(description="Last run")
    def last_run_cell(self, obj):
        return _when(obj.task_stopped) if obj.task_id is not None else "—"

    @display(
        description="Last result",
        label={RESULT_SUCCEEDED: "success", RESULT_FAILED: "danger", NOT_RUN_YET: "info"},
    )
    def last_result_cell(self, obj):
        if obj.task_id is None:
            return NOT_RUN_YET
        return RESULT_SUCCEEDED if obj.task_success else RESULT_FAILED

    @display(description="Next run", ordering="next_run")
    def next_run_cell(self, obj):
        if obj.repeats == 0:
            return "—"
        return _when(obj.next_run)

    @display(description="Repeats", ordering="repeats")
    def repeats_cell(self, obj):
        return repeats_in_words(obj.repeats)


class SuperuserOnly:
    """django-q2's raw screens: any task's function and arguments, resubmit, the queue."""

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request)


class _TaskNames:
    """The task lists: the job's name first (the task's own name, or for older tasks the
    schedule they came from), then when and how long."""

    list_display = ["job_cell", "func", "started", "stopped", "time_taken"]
    list_display_links = ["job_cell"]

    @display(description="Job", ordering="name")
    def job_cell(self, obj):
        # A scheduled task is in the group of its schedule's name (django-q2's default).
        if obj.group and job_schedule_by_name().get(obj.group):
            return job_title(obj.group)
        return obj.name


class SuccessAdmin(SuperuserOnly, _TaskNames, q_admin.TaskAdmin, ModelAdmin):
    pass


class FailureAdmin(SuperuserOnly, _TaskNames, q_admin.FailAdmin, ModelAdmin):
    list_display = ["job_cell", "func", "started", "stopped", "short_result"]

    @display(description="Error")
    def short_result(self, obj):
        return Truncator(str(obj.result or "")).chars(120)


class QueueAdmin(SuperuserOnly, q_admin.QueueAdmin, ModelAdmin):
    def has_add_permission(self, request):
        return False  # a queue row typed by hand would be a task nobody scheduled


# backoffice/admin.py registered them first (INSTALLED_APPS order): these replace them.
for model, model_admin in (
    (Schedule, ScheduleAdmin),
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
# django-q2 registers its queue only with the ORM broker.
if admin.site.is_registered(OrmQ):
    admin.site.unregister(OrmQ)
    admin.site.register(OrmQ, QueueAdmin)

__all__ = ["FailureAdmin", "QueueAdmin", "ScheduleAdmin", "SuccessAdmin"]
