"""The django-q2 schedules of the job registry (management/schedules.py): created after
migrate, idempotent, every func resolvable in management.jobs, and run by django-q2's own
scheduler."""

import importlib
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from management.schedules import (
    ANALYTICS_SCHEDULE_NAME,
    PAYOUT_RUN_SCHEDULE_NAME,
    RECEIPTS_SCHEDULE_NAME,
    REFUNDS_SCHEDULE_FUNC,
    REFUNDS_SCHEDULE_NAME,
    ensure_job_schedules,
    job_schedules,
)
from reports.models import DailyRollup, Receipt
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_schedule_exists_after_migrate_and_calls_the_job_registry():
    for schedule in job_schedules():
        row = Schedule.objects.get(name=schedule.name)  # from post_migrate
        assert row.func == schedule.func
        assert row.func.startswith("management.jobs.")
        assert callable(_resolve(row.func))


def test_ensuring_the_schedules_again_creates_nothing():
    before = Schedule.objects.count()
    assert ensure_job_schedules()["created"] == 0
    assert ensure_job_schedules()["created"] == 0
    assert Schedule.objects.count() == before


def test_an_old_row_is_repointed_by_name():
    Schedule.objects.filter(name=REFUNDS_SCHEDULE_NAME).update(
        func="refunds.jobs.process_pending_refunds"
    )
    ensure_job_schedules()
    assert Schedule.objects.get(name=REFUNDS_SCHEDULE_NAME).func == REFUNDS_SCHEDULE_FUNC


def test_the_weekly_payout_run_waits_one_interval_and_an_update_never_moves_it():
    """A fresh install (or every demo start) must not create payouts at once: the first run is
    one interval away; the other jobs start at once."""
    Schedule.objects.all().delete()
    before = timezone.now()
    ensure_job_schedules()
    rows = {row.name: row for row in Schedule.objects.all()}
    payout_run = rows.pop(PAYOUT_RUN_SCHEDULE_NAME)
    assert payout_run.next_run >= before + timedelta(minutes=payout_run.minutes)
    assert all(row.next_run < before + timedelta(minutes=1) for row in rows.values())
    planned = timezone.now() + timedelta(days=2)
    Schedule.objects.filter(pk=payout_run.pk).update(next_run=planned)
    ensure_job_schedules()
    assert Schedule.objects.get(pk=payout_run.pk).next_run == planned


def test_due_schedules_refresh_today_and_issue_missing_receipts(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    names = [ANALYTICS_SCHEDULE_NAME, RECEIPTS_SCHEDULE_NAME]
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now())
    # Only these: another due schedule (e.g. the Stripe sync) is not under test here.
    Schedule.objects.exclude(name__in=names).delete()
    PaymentFactory(created=timezone.now(), amount=1234)
    scheduler()
    row = DailyRollup.objects.get(day=timezone.localdate())
    assert (row.gross_amount, row.attempted_count) == (1234, 1)
    assert Receipt.objects.count() == 1
    assert all(s.next_run > timezone.now() for s in Schedule.objects.filter(name__in=names))


def test_the_hourly_fraud_schedule_runs_the_rules(monkeypatch):
    from datetime import timedelta

    from management.schedules import FRAUD_SCHEDULE_NAME
    from payments.models import FraudAlert
    from tests.factories import CustomerFactory

    monkeypatch.setattr(Conf, "SYNC", True)
    assert Schedule.objects.get(name=FRAUD_SCHEDULE_NAME).minutes == 60
    Schedule.objects.filter(name=FRAUD_SCHEDULE_NAME).update(next_run=timezone.now())
    Schedule.objects.exclude(name=FRAUD_SCHEDULE_NAME).delete()
    customer = CustomerFactory()
    for minutes in (1, 2, 3):
        PaymentFactory(
            customer=customer, failed=True, created=timezone.now() - timedelta(minutes=minutes)
        )
    scheduler()
    assert FraudAlert.objects.get().rule == "failed_attempts"
