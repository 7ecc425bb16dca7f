"""The django-q2 schedules of the job registry (management/jobs.py).

Every schedule names a function in management.jobs: the command, the admin and django-q2
run the same functions, and a schedule row never points into another app's internals (a
module that is renamed there would leave a dead path in the database). The rows are created
or updated by name after every `migrate` (post_migrate, see apps.py), so changing a func or
an interval here reaches existing databases; management/migrations/0004 rewrote the rows that
named the old per-app modules (refunds.jobs, reports.jobs).

Catch-up is off cluster-wide (Q_CLUSTER["catch_up"] = False): a stopped cluster does not run a
backlog of missed runs; each of these jobs covers what a missed run would have done.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from django.conf import settings

SYNC_SCHEDULE_NAME = "Stripe sync"
SYNC_SCHEDULE_FUNC = "management.jobs.stripe_sync_scheduled"
REFUNDS_SCHEDULE_NAME = "refunds: process pending refunds"
REFUNDS_SCHEDULE_FUNC = "management.jobs.process_pending_refunds_scheduled"
ANALYTICS_SCHEDULE_NAME = "reports: refresh analytics"
ANALYTICS_SCHEDULE_FUNC = "management.jobs.refresh_analytics"
RECEIPTS_SCHEDULE_NAME = "reports: issue missing receipts"
RECEIPTS_SCHEDULE_FUNC = "management.jobs.issue_missing_receipts"
DISPUTE_ALERTS_SCHEDULE_NAME = "payments: dispute deadline alerts"
DISPUTE_ALERTS_SCHEDULE_FUNC = "management.jobs.dispute_deadline_alerts_scheduled"


@dataclass(frozen=True)
class JobSchedule:
    name: str
    func: str
    minutes: int
    kwargs: str = ""  # a Python dict literal, as django-q2 stores it


def job_schedules() -> list[JobSchedule]:
    """The schedules, read from settings at call time (never at import)."""
    return [
        JobSchedule(
            SYNC_SCHEDULE_NAME,
            SYNC_SCHEDULE_FUNC,
            max(1, int(settings.STRIPE_SYNC_SCHEDULE_MINUTES)),
            kwargs="{'trigger': 'schedule'}",
        ),
        # The refund safety net: approved requests whose on-commit task was lost, and those
        # a dead worker or an unknown Stripe outcome left in PROCESSING.
        JobSchedule(REFUNDS_SCHEDULE_NAME, REFUNDS_SCHEDULE_FUNC, 5),
        # Late webhooks, refunds and disputes land on earlier days: recompute a few days.
        JobSchedule(ANALYTICS_SCHEDULE_NAME, ANALYTICS_SCHEDULE_FUNC, 5),
        JobSchedule(RECEIPTS_SCHEDULE_NAME, RECEIPTS_SCHEDULE_FUNC, 60),
        # Evidence deadline alerts (7/3/1 days), daily by default; each alert goes out once
        # whatever the interval, so a shorter one only makes them more punctual.
        JobSchedule(
            DISPUTE_ALERTS_SCHEDULE_NAME,
            DISPUTE_ALERTS_SCHEDULE_FUNC,
            max(1, int(settings.DISPUTE_ALERT_SCHEDULE_MINUTES)),
        ),
    ]


def _validate_kwargs(kwargs_text: str) -> None:
    # One malformed schedule rolls back the whole scheduler pass (LIBRARY_NOTES): check first.
    if not kwargs_text:
        return
    value = ast.literal_eval(kwargs_text)
    if not isinstance(value, dict):
        raise ValueError(f"schedule kwargs must be a dict literal: {kwargs_text!r}")


def ensure_job_schedules(*, using: str = "default") -> dict:
    """Create or update every schedule of the registry, by name (idempotent)."""
    from django_q.models import Schedule

    schedules = job_schedules()
    for schedule in schedules:
        _validate_kwargs(schedule.kwargs)
    created = 0
    for schedule in schedules:
        _, was_created = Schedule.objects.using(using).update_or_create(
            name=schedule.name,
            defaults={
                "func": schedule.func,
                "args": "",
                "kwargs": schedule.kwargs,
                "schedule_type": Schedule.MINUTES,
                "minutes": schedule.minutes,
                "repeats": -1,
            },
        )
        created += was_created
    return {"schedules": len(schedules), "created": created}


def ensure_job_schedules_after_migrate(**kwargs) -> None:
    """post_migrate receiver. The management app has no models of its own, and Django sends
    post_migrate only for apps that have some: we answer django_q's, whose table we fill."""
    app_config = kwargs.get("app_config")
    if app_config is None or app_config.label != "django_q":
        return
    from django.db import connections
    from django_q.models import Schedule

    using = kwargs.get("using") or "default"
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # a partial migrate: django_q is not migrated on this database yet
    ensure_job_schedules(using=using)
