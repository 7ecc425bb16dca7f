"""The job registry. Plain functions: `manage_payments`, the admin and the django-q2
schedules (management/schedules.py) all call these, so a job behaves the same however it is
started. Each returns a JSON-able dict; the `*_scheduled` variants raise when the job could
not do its work, so that django-q2 records the task as failed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from backoffice.outbox import outbox_send_queued
from management.maintenance import (  # noqa: F401
    cleanup_old_data,
    fix_earnings,
    fix_inconsistencies,
)
from payments import fraud_rules, hours, sync_runs
from payments.models import (
    Customer,
    Dispute,
    FraudAlert,
    FraudRuleFailure,
    Payment,
    StudentBalance,
    SyncRun,
)
from payments.selectors import webhook_health
from payments.services.customer_adjustments import customer_adjustments_apply_approved
from payments.services.dispute_alerts import dispute_deadline_alerts_send
from payments.services.payouts import payout_run_create, payouts_process_approved
from refunds.models import RefundRequest
from refunds.selectors import refund_request_pending_count
from refunds.services import refund_requests_process_pending
from reports.payment_report_files import payment_report_write
from reports.receipts import credit_notes_issue_missing, receipts_issue_missing
from reports.rollups import generate_analytics

# The analytics schedule recomputes this many days back: late webhooks, refunds and disputes
# land on earlier days.
REFRESH_DAYS = 3

ERR_SYNC_FAILED = "Stripe sync failed: {error}"
ERR_FRAUD_RULES_FAILED = "Fraud rules failed: {errors}"
ERR_PAYOUTS_UNKNOWN_OUTCOME = (
    "{count} payout(s) left with an unknown Stripe outcome (last error: {error}); they stay "
    "processing and the next run looks each transfer up in Stripe before retrying."
)
ERR_ADJUSTMENTS_UNKNOWN_OUTCOME = (
    "{count} customer adjustment(s) left with an unknown Stripe outcome (last error: {error}); "
    "they stay applying and the next run looks each one up in Stripe before retrying."
)
ERR_REFUNDS_UNKNOWN_OUTCOME = (
    "{count} refund request(s) left with an unknown Stripe outcome (last error: {error}); "
    "they stay processing and the next run looks each one up in Stripe before retrying."
)


class JobFailed(RuntimeError):
    """A job could not do its work (Stripe unreachable, a sync pass failed). Raised by the
    scheduled entry points so that the django-q2 task shows failed; the command turns the
    same condition into exit status 1."""


# --- overview ---------------------------------------------------------------------------------


def system_overview() -> dict:
    """Counts finance and on-call engineers look at first. Uses indexed aggregates only."""
    by_status = dict(
        Payment.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    last_sync = (
        SyncRun.objects.exclude(status=SyncRun.Status.SKIPPED)
        .order_by("-started_at")
        .values("status", "started_at", "error")
        .first()
    )
    return {
        "payments": sum(by_status.values()),
        "payments_by_status": by_status,
        "customers": Customer.objects.count(),
        "open_disputes": Dispute.objects.filter(
            Q(status=Dispute.Status.NEEDS_RESPONSE)
            | Q(status=Dispute.Status.WARNING_NEEDS_RESPONSE)
        ).count(),
        "pending_refund_requests": refund_request_pending_count(),
        "negative_balances": StudentBalance.objects.filter(minutes__lt=0).count(),
        "webhooks_24h": webhook_health(),
        "last_sync": last_sync or "never",
        "latest_payment_at": Payment.objects.aggregate(latest=Max("created"))["latest"],
        "open_fraud_alerts": FraudAlert.objects.filter(status=FraudAlert.Status.OPEN).count(),
        "fraud_rule_failures_24h": FraudRuleFailure.objects.filter(
            created_at__gte=timezone.now() - timedelta(hours=24)
        ).count(),
    }


# --- Stripe sync (payments/sync_runs.py) -------------------------------------------------------


def stripe_sync(*, full=False, since=None, trigger="command", progress=None) -> dict:
    """Mirror Stripe into our tables: incremental from the watermarks, `full=True` backfills,
    `since=date` re-reads a window. Recorded as a SyncRun. `status` is "succeeded", "failed"
    (a pass failed: see `outcomes` per object type) or "skipped" (another run held the
    lock)."""
    return sync_runs.stripe_sync(
        full=full, since=since, trigger=trigger, progress=progress
    ).as_dict()


def stripe_sync_scheduled(trigger="schedule") -> dict:
    """The django-q2 schedule's entry point: raises JobFailed when the run failed. A skipped
    run is no failure: the run holding the lock is doing the work."""
    result = stripe_sync(trigger=trigger)
    if result["status"] == SyncRun.Status.FAILED:
        raise JobFailed(ERR_SYNC_FAILED.format(error=result["error"]))
    return result


# --- fraud rules (payments/fraud_rules.py) -----------------------------------------------------


def detect_fraud(*, since: date | None = None, trigger: str = "command") -> dict:
    """Run every fraud rule over the payments of the last FRAUD_LOOKBACK_HOURS (or created
    since the day `since`) and open alerts. `status`: "succeeded", "failed" (a rule raised:
    see `errors`; the other rules still ran) or "skipped" (another run held the lock)."""
    start = None
    if since is not None:
        start = timezone.make_aware(datetime.combine(since, datetime.min.time()))
    return fraud_rules.fraud_detect(since=start, trigger=trigger).as_dict()


def fraud_rules_error(result: dict) -> str:
    """The error to report for a detect_fraud result that failed, or ""."""
    if result["status"] != "failed":
        return ""
    errors = "; ".join(f"{rule}: {error}" for rule, error in result["errors"].items())
    return ERR_FRAUD_RULES_FAILED.format(errors=errors)


def detect_fraud_scheduled() -> dict:
    """The hourly schedule: raises JobFailed when a rule failed. A skipped run is no
    failure: the run holding the lock is doing the work."""
    result = detect_fraud(trigger="schedule")
    error = fraud_rules_error(result)
    if error:
        raise JobFailed(error)
    return result


# --- refunds (refunds/services.py) -------------------------------------------------------------


def process_pending_refunds(*, limit: int = 500) -> dict:
    """Refund approved requests through Stripe and resume interrupted ones.

    Besides the service's counts: `unknown_outcome`, the requests now waiting with an unknown
    Stripe outcome (a gateway error released their claim: PROCESSING, no processing start),
    and the last such `gateway_error`. Non-zero means Stripe could not be asked or did not
    answer: the job did not do its work. `failed` (Stripe refused a refund) is an answer,
    and staff see it in the queue."""
    counts = refund_requests_process_pending(limit=limit)
    # Counted after the run, over all requests: a gateway error releases the claim
    # (refunds.services.refund_request_process) and leaves exactly this state behind.
    waiting = RefundRequest.objects.filter(
        status=RefundRequest.Status.PROCESSING, processing_started_at__isnull=True
    )
    last = waiting.order_by("-updated_at", "-id").values_list("failure_message", flat=True).first()
    return {**counts, "unknown_outcome": waiting.count(), "gateway_error": last or ""}


def refunds_unknown_outcome_error(result: dict) -> str:
    """The error to report for a process_pending_refunds result, or "" when it did its work."""
    if not result["unknown_outcome"]:
        return ""
    return ERR_REFUNDS_UNKNOWN_OUTCOME.format(
        count=result["unknown_outcome"], error=result["gateway_error"] or "none recorded"
    )


def process_pending_refunds_scheduled() -> dict:
    """The refund safety net's schedule: raises JobFailed while requests are left with an
    unknown Stripe outcome (they are retried on the next run either way)."""
    result = process_pending_refunds()
    error = refunds_unknown_outcome_error(result)
    if error:
        raise JobFailed(error)
    return result


# --- instructor payouts (payments/services/payouts.py) -----------------------------------------


def create_payouts(
    *, currency: str | None = None, dry_run: bool = False, trigger: str = "command"
) -> dict:
    """One pending payout per instructor and currency whose payable balance reaches
    PAYOUT_MINIMUM (or only `currency`); `dry_run` says what would be created. Raises
    payments.services.payouts.PayoutError for a currency with no configured minimum."""
    return payout_run_create(currency=currency, dry_run=dry_run, trigger=trigger).as_dict()


def create_payouts_scheduled() -> dict:
    """The weekly payout run (the payouts it creates wait for approval)."""
    return create_payouts(trigger="schedule")


def process_payouts(*, limit: int = 500) -> dict:
    """Send approved Connect payouts through Stripe and resume interrupted ones. Besides
    the counts: `unknown_outcome`, payouts waiting with an unknown Stripe outcome, and the
    last `gateway_error`; non-zero means Stripe could not be asked or did not answer."""
    return payouts_process_approved(limit=limit)


def payouts_unknown_outcome_error(result: dict) -> str:
    """The error to report for a process_payouts result, or "" when it did its work."""
    if not result["unknown_outcome"]:
        return ""
    return ERR_PAYOUTS_UNKNOWN_OUTCOME.format(
        count=result["unknown_outcome"], error=result["gateway_error"] or "none recorded"
    )


def process_payouts_scheduled() -> dict:
    """The payout safety net's schedule: raises JobFailed while payouts are left with an
    unknown Stripe outcome (they are retried on the next run either way)."""
    result = process_payouts()
    error = payouts_unknown_outcome_error(result)
    if error:
        raise JobFailed(error)
    return result


# --- customer adjustments (payments/services/customer_adjustments.py) -------------------------


def apply_customer_adjustments(*, limit: int = 500) -> dict:
    """Apply approved money adjustments to the customers' Stripe balances and resume
    interrupted ones (each approval queues its own task; this is the safety net). Besides
    the counts: `unknown_outcome`, adjustments waiting with an unknown Stripe outcome."""
    return customer_adjustments_apply_approved(limit=limit)


def apply_customer_adjustments_scheduled() -> dict:
    """The adjustments safety net's schedule: raises JobFailed while adjustments are left with
    an unknown Stripe outcome (they are looked up on the next run either way)."""
    result = apply_customer_adjustments()
    if result["unknown_outcome"]:
        raise JobFailed(
            ERR_ADJUSTMENTS_UNKNOWN_OUTCOME.format(
                count=result["unknown_outcome"], error=result["gateway_error"] or "none recorded"
            )
        )
    return result


# --- dispute deadline alerts (payments/services/dispute_alerts.py) ----------------------------


def dispute_deadline_alerts() -> dict:
    """E-mail the finance group the 7/3/1-day evidence deadline alerts not sent yet (each
    once per dispute and threshold; a re-run or a concurrent run sends nothing twice)."""
    return dispute_deadline_alerts_send()


def dispute_deadline_alerts_scheduled() -> dict:
    """The daily schedule's job: raises JobFailed when alerts are due and nobody receives
    them, so that the django-q2 task shows failed."""
    result = dispute_deadline_alerts()
    if result["error"]:
        raise JobFailed(result["error"])
    return result


# --- prepaid hours (payments/hours.py) ---------------------------------------------------------


def expire_hours() -> dict:
    """Take the minutes left in hour packages past their expiry off the students' balances:
    one ledger entry per package, exactly once (a re-run or a concurrent run finds nothing
    more to do)."""
    return hours.expire_packages().as_dict()


# --- reports (reports/rollups.py, receipts.py, payment_report_files.py) ------------------------


def generate_analytics_job(*, start: date | None = None, end: date | None = None) -> dict:
    """Rollups of [start, end] (inclusive; default: today)."""
    today = timezone.localdate()
    start = start or end or today
    end = end or start
    return generate_analytics(start=start, end=end).as_dict()


def refresh_analytics() -> dict:
    """The schedule's job: the last REFRESH_DAYS days, today included."""
    today = timezone.localdate()
    return generate_analytics(start=today - timedelta(days=REFRESH_DAYS - 1), end=today).as_dict()


def payment_report_job(
    *, period: str, fmt: str = "json", output: str | None = None, end: date | None = None
) -> dict:
    """The payment report of the last 1/7/30 days as JSON, CSV or PDF (ValueError for an
    unknown format or a PDF without `output`)."""
    return payment_report_write(period=period, fmt=fmt, output=output, end=end)


def send_queued_emails() -> dict:
    """Send the customer e-mails waiting in the outbox (sent / failed / requeued counts)."""
    return outbox_send_queued()


def issue_missing_receipts() -> dict:
    """Receipts for captured payments and credit notes for succeeded refunds that have none
    (repair after a missed signal, or a refund made in the Stripe dashboard)."""
    return {**receipts_issue_missing(), **credit_notes_issue_missing()}
