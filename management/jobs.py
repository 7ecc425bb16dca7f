"""Operational jobs. Plain functions: `manage_payments`, the admin and django-q2 schedules all
call these, so a job behaves the same however it is started. Each returns a JSON-able dict."""

from __future__ import annotations

from django.db.models import Count, Max, Q

from management.maintenance import cleanup_old_data, fix_inconsistencies  # noqa: F401
from management.models import SyncRun
from payments.models import Customer, Dispute, Payment, StudentBalance
from payments.selectors_webhooks import webhook_health
from refunds.jobs import process_pending_refunds  # noqa: F401 - the command calls jobs.*
from refunds.selectors import refund_request_pending_count
from reports.jobs import (  # noqa: F401 - re-exported: the command and schedules call jobs.*
    generate_analytics_job,
    issue_missing_receipts,
    payment_report_job,
    refresh_analytics,
)


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
    }


def stripe_sync(*, full=False, since=None, trigger="command", progress=None) -> dict:
    """Mirror Stripe into our tables (payments/jobs.py): incremental from the watermarks,
    `full=True` backfills, `since=date` re-reads a window. Recorded as a SyncRun."""
    from payments.jobs import stripe_sync as run

    return run(full=full, since=since, trigger=trigger, progress=progress).as_dict()


def stripe_sync_scheduled(trigger="schedule") -> dict:
    """The django-q2 schedule's entry point: raises on failure so the task shows failed."""
    result = stripe_sync(trigger=trigger)
    if result["status"] == "failed":
        raise RuntimeError(result["error"])
    return result
