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
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

SYNC_SCHEDULE_NAME = "Stripe sync"
SYNC_SCHEDULE_FUNC = "management.jobs.stripe_sync_scheduled"
REFUNDS_SCHEDULE_NAME = "refunds: process pending refunds"
REFUNDS_SCHEDULE_FUNC = "management.jobs.process_pending_refunds_scheduled"
ANALYTICS_SCHEDULE_NAME = "reports: refresh analytics"
ANALYTICS_SCHEDULE_FUNC = "management.jobs.refresh_analytics"
RECEIPTS_SCHEDULE_NAME = "reports: issue missing receipts"
RECEIPTS_SCHEDULE_FUNC = "management.jobs.issue_missing_receipts"
FRAUD_SCHEDULE_NAME = "payments: detect fraud"
FRAUD_SCHEDULE_FUNC = "management.jobs.detect_fraud_scheduled"
DISPUTE_ALERTS_SCHEDULE_NAME = "payments: dispute deadline alerts"
DISPUTE_ALERTS_SCHEDULE_FUNC = "management.jobs.dispute_deadline_alerts_scheduled"
PAYOUT_RUN_SCHEDULE_NAME = "payments: create payouts"
PAYOUT_RUN_SCHEDULE_FUNC = "management.jobs.create_payouts_scheduled"
PAYOUTS_PROCESS_SCHEDULE_NAME = "payments: process approved payouts"
PAYOUTS_PROCESS_SCHEDULE_FUNC = "management.jobs.process_payouts_scheduled"
OUTBOX_SCHEDULE_NAME = "backoffice: send queued customer e-mails"
OUTBOX_SCHEDULE_FUNC = "management.jobs.send_queued_emails"
ADJUSTMENTS_APPLY_SCHEDULE_NAME = "payments: apply approved customer adjustments"
ADJUSTMENTS_APPLY_SCHEDULE_FUNC = "management.jobs.apply_customer_adjustments_scheduled"
HOURS_EXPIRY_SCHEDULE_NAME = "payments: expire prepaid hours"
HOURS_EXPIRY_SCHEDULE_FUNC = "management.jobs.expire_hours"


@dataclass(frozen=True)
class JobSchedule:
    name: str  # the row's key in django_q's table (never renamed: rows are found by it)
    func: str
    minutes: int
    kwargs: str = ""  # a Python dict literal, as django-q2 stores it
    title: str = ""  # what staff call the job: the Scheduled jobs page and its tasks' names
    description: str = ""  # what it does, in staff's words (the Scheduled jobs page)
    # A new schedule's first run: at once (False), or one interval after it is created (True),
    # for jobs that must not fire on every fresh install or demo start (a weekly payout run).
    wait_first_interval: bool = False

    def stored_kwargs(self) -> str:
        """The kwargs as stored: the job's own, plus django-q2's q_options naming each task
        it starts after the job (instead of a random "rugby-lithium-dakota-aspen")."""
        kwargs = ast.literal_eval(self.kwargs) if self.kwargs else {}
        kwargs["q_options"] = {"task_name": self.title or self.name}
        return repr(kwargs)


def job_schedules() -> list[JobSchedule]:
    """The schedules, read from settings at call time (never at import)."""
    return [
        JobSchedule(
            SYNC_SCHEDULE_NAME,
            SYNC_SCHEDULE_FUNC,
            max(1, int(settings.STRIPE_SYNC_SCHEDULE_MINUTES)),
            kwargs="{'trigger': 'schedule'}",
            title="Stripe sync",
            description=(
                "Copies new and changed payments, refunds, disputes and customers from Stripe "
                "(from the last watermarks)."
            ),
        ),
        # The refund safety net: approved requests whose on-commit task was lost, and those
        # a dead worker or an unknown Stripe outcome left in PROCESSING.
        JobSchedule(
            REFUNDS_SCHEDULE_NAME,
            REFUNDS_SCHEDULE_FUNC,
            5,
            title="Process approved refunds",
            description=(
                "Sends approved refund requests to Stripe and resumes interrupted ones (the "
                "safety net behind each approval's own task)."
            ),
        ),
        # Late webhooks, refunds and disputes land on earlier days: recompute a few days.
        JobSchedule(
            ANALYTICS_SCHEDULE_NAME,
            ANALYTICS_SCHEDULE_FUNC,
            5,
            title="Refresh analytics",
            description="Recomputes the daily sales figures of the last few days.",
        ),
        JobSchedule(
            RECEIPTS_SCHEDULE_NAME,
            RECEIPTS_SCHEDULE_FUNC,
            60,
            title="Issue missing receipts",
            description=(
                "Issues receipts for captured payments and credit notes for refunds that have "
                "none yet."
            ),
        ),
        # The customer e-mail outbox: what services queued in their transactions, and the
        # retries post_office scheduled (POST_OFFICE["RETRY_INTERVAL"]).
        JobSchedule(
            OUTBOX_SCHEDULE_NAME,
            OUTBOX_SCHEDULE_FUNC,
            max(1, int(settings.OUTBOX_SEND_SCHEDULE_MINUTES)),
            title="Send queued customer e-mails",
            description=(
                "Sends the refund confirmations and receipts waiting in the outbox; a failed "
                "one is retried later, then shown as failed in the Outbox."
            ),
        ),
        # Evidence deadline alerts (7/3/1 days), daily by default; each alert goes out once
        # whatever the interval, so a shorter one only makes them more punctual.
        JobSchedule(
            DISPUTE_ALERTS_SCHEDULE_NAME,
            DISPUTE_ALERTS_SCHEDULE_FUNC,
            max(1, int(settings.DISPUTE_ALERT_SCHEDULE_MINUTES)),
            title="Dispute deadline alerts",
            description=(
                "E-mails finance when a dispute's evidence is due in 7, 3 or 1 days (each "
                "alert once)."
            ),
        ),
        # Our fraud rules over the last FRAUD_LOOKBACK_HOURS (each payment event also runs
        # them over what it touched; this pass catches what events missed).
        JobSchedule(
            FRAUD_SCHEDULE_NAME,
            FRAUD_SCHEDULE_FUNC,
            60,
            title="Detect fraud",
            description="Runs the fraud rules over recent payments and opens alerts.",
        ),
        # Weekly by default: the payouts it creates wait for approval, so the interval only
        # decides how often finance gets a batch to review.
        JobSchedule(
            PAYOUT_RUN_SCHEDULE_NAME,
            PAYOUT_RUN_SCHEDULE_FUNC,
            max(1, int(settings.PAYOUT_RUN_SCHEDULE_MINUTES)),
            title="Create payouts",
            wait_first_interval=True,
            description=(
                "Creates one payout per instructor and currency whose available balance "
                "reaches the minimum; they wait for approval."
            ),
        ),
        # The payout safety net: approved payouts whose on-commit task was lost, and those a
        # dead worker or an unknown Stripe outcome left in PROCESSING.
        JobSchedule(
            PAYOUTS_PROCESS_SCHEDULE_NAME,
            PAYOUTS_PROCESS_SCHEDULE_FUNC,
            15,
            title="Process approved payouts",
            description=(
                "Sends approved Stripe Connect payouts and resumes interrupted ones (the safety "
                "net behind each approval's own task)."
            ),
        ),
        # The customer adjustments' safety net: approved money adjustments whose on-commit
        # task was lost, and those a dead worker or an unknown Stripe outcome left applying.
        JobSchedule(
            ADJUSTMENTS_APPLY_SCHEDULE_NAME,
            ADJUSTMENTS_APPLY_SCHEDULE_FUNC,
            15,
            title="Apply customer adjustments",
            description=(
                "Applies approved money adjustments to the customers' Stripe balances and "
                "resumes interrupted ones (the safety net behind each approval's own task)."
            ),
        ),
        # Daily by default: a package expires at a moment, its minutes leave the balance at
        # the next run (FIFO draws never take expired minutes in between).
        JobSchedule(
            HOURS_EXPIRY_SCHEDULE_NAME,
            HOURS_EXPIRY_SCHEDULE_FUNC,
            max(1, int(settings.HOURS_EXPIRY_SCHEDULE_MINUTES)),
            title="Expire prepaid hours",
            description=(
                "Takes the minutes left in expired hour packages off the students' balances "
                "(one ledger entry per package)."
            ),
        ),
    ]


# --- What a schedule or task may run ------------------------------------------------------------
# A schedule row stores a dotted function path, and django-q2 would run any importable callable
# it names (os.system included). It may only name these: the registry's own schedules (above),
# jobs staff may schedule on their own, and the task entry points our own code schedules
# (payments.webhooks schedules each webhook retry). management/schedule_rules.py enforces it on
# save, before each scheduler pass and on every task enqueued.
EXTRA_SCHEDULABLE_FUNCTIONS = {
    "payments.tasks.webhook_events_requeue_stale": "Requeue stale webhook events",
    "payments.tasks.webhook_event_process_task": "Process one webhook event (a retry)",
    "management.jobs.generate_analytics_job": "Recompute analytics for a date range",
    "management.jobs.cleanup_old_data": "Delete data past its retention",
    "management.jobs.fix_inconsistencies": "Repair inconsistent rows",
}

# Task entry points our code queues with async_task (never offered for a schedule, but a worker
# runs them). A new entry point is added here, or its tasks are refused.
QUEUED_TASK_FUNCTIONS = frozenset(
    {
        "payments.tasks.webhook_event_process_task",
        "payments.tasks.payout_process_task",
        "payments.tasks.customer_adjustment_apply_task",
        "refunds.tasks.refund_request_process_task",
    }
)


def schedulable_functions() -> dict[str, str]:
    """func -> title of every function a django-q2 schedule may name: the admin form's choice
    list, in the registry's order."""
    functions = {}
    for schedule in job_schedules():
        functions.setdefault(schedule.func, schedule.title or schedule.name)
    for func, title in EXTRA_SCHEDULABLE_FUNCTIONS.items():
        functions.setdefault(func, title)
    return functions


def job_schedule_by_name() -> dict[str, JobSchedule]:
    """The registry by schedule name (the Scheduled jobs and tasks pages look titles up)."""
    return {schedule.name: schedule for schedule in job_schedules()}


# django-q2's schedule types in words (Schedule.TYPE codes), for the Scheduled jobs page.
_TYPE_WORDS = {
    "O": "once",
    "H": "hourly",
    "D": "daily",
    "W": "weekly",
    "BW": "every two weeks",
    "M": "monthly",
    "BM": "every two months",
    "Q": "quarterly",
    "Y": "yearly",
}
_MINUTES_PER = [(7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour"), (1, "minute")]
_ONE_UNIT = {"week": "weekly", "day": "daily", "hour": "hourly", "minute": "every minute"}


def interval_in_words(*, schedule_type: str, minutes: int | None, cron: str | None = "") -> str:
    """How often a schedule runs, as staff say it: "every 15 minutes", "hourly", "daily",
    "every 6 hours", "cron 0 3 * * *"."""
    if schedule_type == "I":  # Schedule.MINUTES
        minutes = max(1, minutes or 1)
        for size, unit in _MINUTES_PER:
            if minutes % size == 0:
                count = minutes // size
                return _ONE_UNIT[unit] if count == 1 else f"every {count} {unit}s"
    if schedule_type == "C":
        return f"cron {cron}" if cron else "cron"
    return _TYPE_WORDS.get(schedule_type, schedule_type)


def repeats_in_words(repeats: int) -> str:
    """django-q2's `repeats`: -1 forever, 0 done, n more times."""
    if repeats < 0:
        return "forever"
    if repeats == 0:
        return "no more runs"
    return "once more" if repeats == 1 else f"{repeats} more times"


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
        _validate_kwargs(schedule.stored_kwargs())
    created = 0
    now = timezone.now()
    for schedule in schedules:
        defaults = {
            "func": schedule.func,
            "args": "",
            "kwargs": schedule.stored_kwargs(),
            "schedule_type": Schedule.MINUTES,
            "minutes": schedule.minutes,
            "repeats": -1,
        }
        # next_run only when the row is new (create_defaults replaces defaults on create):
        # an update never moves a planned run.
        create_defaults = None
        if schedule.wait_first_interval:
            create_defaults = {**defaults, "next_run": now + timedelta(minutes=schedule.minutes)}
        _, was_created = Schedule.objects.using(using).update_or_create(
            name=schedule.name, defaults=defaults, create_defaults=create_defaults
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
