"""The django-q2 schedules that keep rollups and receipts current while the app runs."""

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from reports.jobs import REPORT_SCHEDULES, ensure_report_schedules
from reports.models import DailyRollup, Receipt
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def test_schedules_are_created_once_whatever_the_number_of_calls():
    ensure_report_schedules()
    ensure_report_schedules()
    names = [name for name, _, _ in REPORT_SCHEDULES]
    assert Schedule.objects.filter(name__in=names).count() == len(names)


def test_due_schedules_refresh_today_and_issue_missing_receipts(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    ensure_report_schedules()
    names = [name for name, _, _ in REPORT_SCHEDULES]
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now())
    # Only ours: another app's due schedule (e.g. the Stripe sync) is not under test here.
    Schedule.objects.exclude(name__in=names).delete()
    PaymentFactory(created=timezone.now(), amount=1234)
    scheduler()
    row = DailyRollup.objects.get(day=timezone.localdate())
    assert (row.gross_amount, row.attempted_count) == (1234, 1)
    assert Receipt.objects.count() == 1
    assert all(s.next_run > timezone.now() for s in Schedule.objects.filter(name__in=names))
