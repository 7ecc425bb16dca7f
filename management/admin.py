"""django-q2's operations screens in the admin's language. backoffice/admin.py gives them
Unfold's look; here the Scheduled jobs page says, per job, what staff need: its name, what it
does (the registry in management/schedules.py), how often in words, when it last ran and how
that ended, and when it runs next; the task lists name each task after its job.

Schedules not in the registry (a webhook retry, the webhook safety net a payments migration
installs) show their stored name and the first line of their function's docstring.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.text import Truncator
from django_q import admin as q_admin
from django_q.models import Failure, Schedule, Success, Task
from unfold.admin import ModelAdmin
from unfold.decorators import display

from backoffice.formats import format_datetime

from .schedules import interval_in_words, job_schedule_by_name, repeats_in_words

NOT_RUN_YET = "Not run yet"
RESULT_SUCCEEDED = "Succeeded"
RESULT_FAILED = "Failed"


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


class SuccessAdmin(_TaskNames, q_admin.TaskAdmin, ModelAdmin):
    pass


class FailureAdmin(_TaskNames, q_admin.FailAdmin, ModelAdmin):
    list_display = ["job_cell", "func", "started", "stopped", "short_result"]

    @display(description="Error")
    def short_result(self, obj):
        return Truncator(str(obj.result or "")).chars(120)


# backoffice/admin.py registered them first (INSTALLED_APPS order): these replace them.
for model, model_admin in (
    (Schedule, ScheduleAdmin),
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

__all__ = ["FailureAdmin", "ScheduleAdmin", "SuccessAdmin"]
