"""`manage_payments` tells cron the truth: its exit status (documented in the command's
docstring and --help) says whether the job did its work.

Run the way cron runs it (`run_from_argv`, which turns errors into SystemExit), except where
the test is about the job's output. Stripe unreachable is a closed port on 127.0.0.1."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from management import jobs
from management.management.commands.manage_payments import (
    ERR_DRY_RUN_FLAG,
    ERR_HALF_RANGE,
    ERR_SINCE_FLAG,
    ERR_SYNC_FLAGS,
    ERR_SYNC_FULL_AND_SINCE,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_USAGE,
    Command,
)
from payments.gateway import client as gateway_client
from payments.models import JobLock, SyncRun
from payments.sync_runs import LOCK_NAME, MSG_LOCKED
from refunds.models import RefundRequest
from tests.factories import RefundRequestFactory

pytestmark = pytest.mark.django_db

CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens on it


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    # run_from_argv closes every connection when it ends; on PostgreSQL that would end the
    # test's transaction under it.
    monkeypatch.setattr(connections, "close_all", lambda: None)


def exit_status(*args: str) -> int:
    """Run the command as `manage.py manage_payments ARGS` would; its exit status."""
    try:
        Command().run_from_argv(["manage.py", "manage_payments", *args])
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.fixture
def stripe_unreachable(settings, monkeypatch):
    settings.STRIPE_API_BASE = CLOSED_PORT
    settings.STRIPE_SECRET_KEY = "sk_test_unreachable"
    settings.STRIPE_MAX_RETRIES = 1
    sleeps = []
    monkeypatch.setattr(gateway_client, "sleep", sleeps.append)  # backoff recorded, not slept
    return sleeps


# --- bad usage: 2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--sync-stripe", "--process-pending-refunds"),
        ("--generate-analytics", "--cleanup-old-data"),
        ("--fix-inconsistencies", "--cleanup-old-data"),
        ("--payment-report", "daily", "--sync-stripe"),
        ("--issue-receipts", "--generate-analytics"),
    ],
)
def test_two_actions_are_a_usage_error_and_nothing_runs(args, capsys, monkeypatch):
    ran = []
    for name in ("stripe_sync", "process_pending_refunds", "generate_analytics_job"):
        monkeypatch.setattr(jobs, name, lambda *a, _n=name, **kw: ran.append(_n))
    assert exit_status(*args) == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err
    assert ran == []


def test_a_modifier_without_its_action_is_a_usage_error_and_deletes_nothing(capsys):
    # A sync run far past retention: a real cleanup would delete it.
    old = timezone.now() - timedelta(days=3650)
    run = SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED, started_at=old, finished_at=old)
    assert exit_status("--cleanup-old-data", "--dry-run") == EXIT_USAGE
    assert ERR_DRY_RUN_FLAG in capsys.readouterr().err
    assert SyncRun.objects.filter(pk=run.pk).exists()
    assert exit_status("--cleanup-old-data") == 0
    assert not SyncRun.objects.filter(pk=run.pk).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--full",), ERR_SYNC_FLAGS),
        (("--sync-stripe", "--full", "--since", "2026-01-01"), ERR_SYNC_FULL_AND_SINCE),
        (("--generate-analytics", "--from", "2026-01-01"), ERR_HALF_RANGE),
    ],
)
def test_the_existing_combination_errors_exit_2(args, message, capsys):
    assert exit_status(*args) == EXIT_USAGE
    assert message in capsys.readouterr().err
    with pytest.raises(CommandError) as exc:
        call_command("manage_payments", *args, stdout=io.StringIO())
    assert exc.value.returncode == EXIT_USAGE


def test_the_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        Command().run_from_argv(["manage.py", "manage_payments", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{EXIT_USAGE} bad usage" in text
    assert f"{EXIT_LOCKED} the Stripe sync was skipped" in text


# --- Stripe sync: 1 failed, 75 skipped ---------------------------------------------------------


def test_a_sync_skipped_for_the_lock_exits_75_and_is_recorded(capsys):
    token = JobLock.objects.acquire(LOCK_NAME, ttl=timedelta(minutes=5))
    assert exit_status("--sync-stripe") == EXIT_LOCKED
    assert MSG_LOCKED in capsys.readouterr().err
    assert SyncRun.objects.get().status == SyncRun.Status.SKIPPED
    JobLock.objects.release(LOCK_NAME, token)


def test_a_failed_sync_exits_1(stripe_unreachable, capsys):
    assert exit_status("--sync-stripe") == EXIT_FAILED
    assert "Stripe sync failed: GatewayConnectionError" in capsys.readouterr().err
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED
    assert not JobLock.objects.exists()


def test_a_skipped_scheduled_sync_is_no_failure_but_a_failed_one_raises(stripe_unreachable):
    token = JobLock.objects.acquire(LOCK_NAME, ttl=timedelta(minutes=5))
    assert jobs.stripe_sync_scheduled()["status"] == SyncRun.Status.SKIPPED
    JobLock.objects.release(LOCK_NAME, token)
    with pytest.raises(jobs.JobFailed, match="GatewayConnectionError"):
        jobs.stripe_sync_scheduled()


# --- refunds: Stripe unreachable -> 1 ----------------------------------------------------------


def approved_request() -> RefundRequest:
    return RefundRequestFactory(status=RefundRequest.Status.APPROVED, approved_at=timezone.now())


def test_refunds_left_with_an_unknown_outcome_exit_1_and_say_so(stripe_unreachable, capsys):
    row = approved_request()
    assert exit_status("--process-pending-refunds", "--json") == EXIT_FAILED
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert (result["candidates"], result["processed"], result["still_processing"]) == (1, 0, 1)
    assert result["unknown_outcome"] == 1
    assert "Could not reach Stripe" in result["gateway_error"]
    assert "1 refund request(s) left with an unknown Stripe outcome" in err
    row.refresh_from_db()
    # Not failed: Stripe may have acted. The next run looks the refund up first.
    assert row.status == RefundRequest.Status.PROCESSING
    assert row.processing_started_at is None


def test_the_refund_schedule_raises_while_stripe_is_unreachable(stripe_unreachable):
    approved_request()
    with pytest.raises(jobs.JobFailed, match="unknown Stripe outcome"):
        jobs.process_pending_refunds_scheduled()


def test_nothing_to_refund_exits_0():
    assert exit_status("--process-pending-refunds") == 0
    assert jobs.process_pending_refunds_scheduled()["unknown_outcome"] == 0


# --- fraud detection: 0 done, 1 a rule failed, 75 locked ----------------------------------------


def test_detect_fraud_exits_0_and_prints_what_it_opened(capsys):
    from payments.models import FraudAlert
    from tests.factories import CustomerFactory, PaymentFactory

    customer = CustomerFactory()
    for minutes in (1, 2, 3):
        PaymentFactory(
            customer=customer, failed=True, created=timezone.now() - timedelta(minutes=minutes)
        )
    assert exit_status("--detect-fraud", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["opened"]) == ("succeeded", {"failed_attempts": 1})
    assert FraudAlert.objects.get().rule == "failed_attempts"


def test_detect_fraud_since_a_day_reaches_older_payments(capsys):
    from tests.factories import CustomerFactory, PaymentFactory

    customer = CustomerFactory()
    old = timezone.now() - timedelta(days=5)
    for minutes in (1, 2, 3):
        PaymentFactory(customer=customer, failed=True, created=old - timedelta(minutes=minutes))
    assert exit_status("--detect-fraud", "--json") == 0
    assert json.loads(capsys.readouterr().out)["opened"] == {}
    since = (old - timedelta(days=1)).date().isoformat()
    assert exit_status("--detect-fraud", "--since", since, "--json") == 0
    assert json.loads(capsys.readouterr().out)["opened"] == {"failed_attempts": 1}


def test_detect_fraud_with_a_failing_rule_exits_1(monkeypatch, capsys):
    from payments import fraud_rules

    def broken(scope):
        raise RuntimeError("boom")

    monkeypatch.setitem(fraud_rules.RULES, "shared_ip", broken)
    assert exit_status("--detect-fraud") == EXIT_FAILED
    assert "Fraud rules failed: shared_ip: RuntimeError: boom" in capsys.readouterr().err
    with pytest.raises(jobs.JobFailed, match="shared_ip"):
        jobs.detect_fraud_scheduled()


def test_detect_fraud_while_another_run_holds_the_lock_exits_75(capsys):
    from payments import fraud_rules

    token = JobLock.objects.acquire(fraud_rules.LOCK_NAME, ttl=timedelta(minutes=5))
    assert exit_status("--detect-fraud") == EXIT_LOCKED
    assert fraud_rules.MSG_LOCKED in capsys.readouterr().err
    assert jobs.detect_fraud_scheduled()["status"] == "skipped"  # no failure for the schedule
    JobLock.objects.release(fraud_rules.LOCK_NAME, token)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--detect-fraud", "--full"), ERR_SYNC_FLAGS),
        (("--since", "2026-01-01"), ERR_SINCE_FLAG),
        (("--generate-analytics", "--since", "2026-01-01"), ERR_SINCE_FLAG),
    ],
)
def test_detect_fraud_modifiers(args, message, capsys):
    assert exit_status(*args) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_detect_fraud_is_one_action_among_the_others(capsys):
    assert exit_status("--detect-fraud", "--sync-stripe") == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_overview_counts_open_fraud_alerts_and_rule_failures(capsys):
    from payments.models import FraudRuleFailure

    FraudRuleFailure.objects.create(rule="shared_ip", trigger="event", error="x")
    assert exit_status("--json") == 0
    overview = json.loads(capsys.readouterr().out)
    assert (overview["open_fraud_alerts"], overview["fraud_rule_failures_24h"]) == (0, 1)
