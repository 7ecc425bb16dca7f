"""`manage_payments --create-payouts [--currency C] [--dry-run]` and `--process-payouts`, their
jobs (management/jobs.py) and schedules (management/schedules.py)."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from management.management.commands.manage_payments import (
    ERR_CURRENCY_FLAG,
    ERR_DRY_RUN_FLAG,
    EXIT_FAILED,
    EXIT_USAGE,
    Command,
)
from management.schedules import (
    PAYOUT_RUN_SCHEDULE_NAME,
    PAYOUTS_PROCESS_SCHEDULE_NAME,
    job_schedule_by_name,
)
from payments import gateway
from payments.exceptions import GatewayTimeout
from payments.models import Payout, PayoutRun
from payments.services.payouts import ERR_CURRENCY_NOT_CONFIGURED
from tests.factories import InstructorFactory
from tests.payouts.conftest import earn

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    # run_from_argv closes every connection when it ends (see the exit-code tests).
    monkeypatch.setattr(connections, "close_all", lambda: None)


def run(*args: str) -> tuple[int, str, str]:
    """`manage.py manage_payments ARGS` as cron runs it: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    try:
        command.run_from_argv(["manage.py", "manage_payments", *args])
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def instructors(db):
    ada = InstructorFactory(stripe_account_id="acct_ada")
    bob = InstructorFactory()
    earn(ada, 5000)
    earn(bob, 1500, "eur")
    return ada, bob


def test_create_payouts_dry_run_prints_the_totals_and_writes_nothing(instructors):
    status, out, _ = run("--create-payouts", "--dry-run", "--json")
    assert status == 0
    result = json.loads(out)
    assert result["dry_run"] is True
    assert result["totals"] == {
        "eur": {"count": 1, "amount": 1500},
        "usd": {"count": 1, "amount": 5000},
    }
    assert not Payout.objects.exists()


def test_create_payouts_for_one_currency(instructors):
    status, out, _ = run("--create-payouts", "--currency", "usd", "--json")
    assert status == 0
    assert json.loads(out)["run_id"] == PayoutRun.objects.get().pk
    assert list(Payout.objects.values_list("currency", "amount")) == [("usd", 5000)]


def test_create_payouts_refuses_a_currency_without_a_minimum(instructors):
    status, _, err = run("--create-payouts", "--currency", "chf")
    assert status == EXIT_USAGE
    assert ERR_CURRENCY_NOT_CONFIGURED.format(currency="CHF") in err
    assert not PayoutRun.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--currency", "usd"], ERR_CURRENCY_FLAG),
        (["--process-payouts", "--currency", "usd"], ERR_CURRENCY_FLAG),
        (["--process-payouts", "--dry-run"], ERR_DRY_RUN_FLAG),
    ],
)
def test_payout_modifiers_without_their_action_are_usage_errors(instructors, args, message):
    status, _, err = run(*args)
    assert (status, message in err) == (EXIT_USAGE, True)
    assert not Payout.objects.exists()


def test_process_payouts_exits_1_while_a_transfer_has_an_unknown_outcome(instructors, monkeypatch):
    call_command("manage_payments", "--create-payouts", stdout=io.StringIO())
    Payout.objects.filter(method=Payout.Method.CONNECT).update(status=Payout.Status.APPROVED)

    def timeout(**kwargs):
        raise GatewayTimeout()

    monkeypatch.setattr(gateway, "stripe_transfer_create", timeout, raising=False)
    monkeypatch.setattr(gateway, "stripe_transfer_list", lambda **kw: [], raising=False)
    status, _, err = run("--process-payouts")
    assert status == EXIT_FAILED
    assert "1 payout(s) left with an unknown Stripe outcome" in err
    assert Payout.objects.get(method=Payout.Method.CONNECT).status == Payout.Status.PROCESSING


def test_the_payout_schedules_exist_weekly_and_every_15_minutes(settings):
    schedules = job_schedule_by_name()
    assert schedules[PAYOUT_RUN_SCHEDULE_NAME].minutes == 7 * 24 * 60
    assert schedules[PAYOUTS_PROCESS_SCHEDULE_NAME].minutes == 15
    assert Schedule.objects.get(name=PAYOUT_RUN_SCHEDULE_NAME).minutes == 7 * 24 * 60


def test_the_weekly_schedule_creates_payouts(instructors, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    Schedule.objects.filter(name=PAYOUT_RUN_SCHEDULE_NAME).update(next_run=timezone.now())
    Schedule.objects.exclude(name=PAYOUT_RUN_SCHEDULE_NAME).delete()
    scheduler()
    run_row = PayoutRun.objects.get()
    assert (run_row.trigger, run_row.payouts_created) == ("schedule", 2)
