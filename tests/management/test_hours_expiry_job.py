"""The daily hours expiry job: registered with django-q2, run by `manage_payments
--expire-hours`; one ledger entry per expired package remainder, exactly once."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from management.schedules import HOURS_EXPIRY_SCHEDULE_NAME, ensure_job_schedules
from payments import hours
from payments.models import BalanceEntry, HourPackage, StudentBalance
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def package(customer, minutes, days, ref):
    hours.credit_minutes(
        customer_id=customer.pk,
        minutes=minutes,
        kind=BalanceEntry.Kind.ADJUSTMENT,
        reference=ref,
        expires_at=timezone.now() + timedelta(days=days),
    )
    return HourPackage.objects.get(reference=ref)


def test_the_command_expires_each_remainder_once():
    ada, bob = CustomerFactory(), CustomerFactory()
    package(ada, 120, 30, "ada-new")
    old = package(ada, 60, 1, "ada-old")
    package(bob, 90, 1, "bob-old")
    HourPackage.objects.filter(reference__endswith="-old").update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    runs = []
    for _ in range(2):
        out = io.StringIO()
        call_command("manage_payments", "--expire-hours", "--json", stdout=out)
        runs.append(json.loads(out.getvalue()))
    assert runs == [
        {"packages_expired": 2, "minutes_expired": 150},
        {"packages_expired": 0, "minutes_expired": 0},
    ]
    expiries = BalanceEntry.objects.filter(kind=BalanceEntry.Kind.EXPIRY)
    assert expiries.count() == 2
    assert expiries.get(balance__customer=ada).reference == hours.expiry_reference(old.pk)
    assert StudentBalance.objects.get(customer=ada).minutes == 120
    assert StudentBalance.objects.get(customer=bob).minutes == 0


def test_the_daily_schedule_runs_the_job(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    ensure_job_schedules()
    schedule = Schedule.objects.get(name=HOURS_EXPIRY_SCHEDULE_NAME)
    assert (schedule.func, schedule.minutes) == ("management.jobs.expire_hours", 1440)
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now())
    Schedule.objects.exclude(pk=schedule.pk).delete()
    customer = CustomerFactory()
    package(customer, 60, 1, "p")
    HourPackage.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    scheduler()
    assert StudentBalance.objects.get(customer=customer).minutes == 0
    assert BalanceEntry.objects.filter(kind=BalanceEntry.Kind.EXPIRY).count() == 1
