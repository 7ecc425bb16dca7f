"""Report jobs: plain functions the command, the admin and django-q2 schedules all call.
Each returns a JSON-able dict."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

from django.utils import timezone

from . import receipts
from .exports import write_csv
from .pdf import payment_report_pdf
from .rollups import generate_analytics
from .selectors import payment_report

ERR_UNKNOWN_FORMAT = "Unknown report format {format!r}: choose json, csv or pdf."
ERR_PDF_NEEDS_OUTPUT = "A PDF report needs --output PATH."
REPORT_FORMATS = ("json", "csv", "pdf")
# The refresh schedule recomputes this many days back: late webhooks, refunds and disputes
# land on earlier days.
REFRESH_DAYS = 3


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


def backfill_analytics(*, days: int) -> dict:
    today = timezone.localdate()
    return generate_analytics(start=today - timedelta(days=days - 1), end=today).as_dict()


def report_csv_lines(report: dict):
    """The report as CSV: one row per currency (amounts in minor units)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "start",
            "end",
            "currency",
            "total_transactions",
            "succeeded_transactions",
            "failed_transactions",
            "success_rate",
            "total_revenue",
            "avg_transaction_amount",
            "refunds_count",
            "refunds_amount",
            "stripe_fees",
            "platform_fees",
            "net",
            "disputes_opened",
            "payment_method_breakdown",
            "failure_reasons",
        ]
    )
    for code, data in report["currencies"].items():
        writer.writerow(
            [
                report["start"],
                report["end"],
                code,
                data["total_transactions"],
                data["succeeded_transactions"],
                data["failed_transactions"],
                data["success_rate"],
                data["total_revenue"],
                data["avg_transaction_amount"],
                data["refunds"]["count"],
                data["refunds"]["amount"],
                data["fees"]["stripe"],
                data["fees"]["platform"],
                data["net"],
                data["disputes_opened"],
                json.dumps(data["payment_method_breakdown"]),
                json.dumps(data["failure_reasons"]),
            ]
        )
    yield buffer.getvalue()


def payment_report_job(
    *, period: str, fmt: str = "json", output: str | None = None, end: date | None = None
) -> dict:
    """Build the report from the rollups; write it to `output` when given. Returns the report
    (json) or a summary with the path written (csv, pdf)."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(ERR_UNKNOWN_FORMAT.format(format=fmt))
    report = payment_report(period=period, end=end)
    if fmt == "json":
        if output:
            Path(output).write_text(json.dumps(report, indent=2))
        return report
    if fmt == "csv":
        if output:
            write_csv(report_csv_lines(report), output)
            return {
                "written": str(output),
                "format": "csv",
                "currencies": len(report["currencies"]),
            }
        return {"csv": "".join(report_csv_lines(report))}
    if not output:
        raise ValueError(ERR_PDF_NEEDS_OUTPUT)
    content = payment_report_pdf(report)
    Path(output).write_bytes(content)
    return {"written": str(output), "format": "pdf", "bytes": len(content)}


def issue_missing_receipts() -> dict:
    """Receipts for captured payments and credit notes for succeeded refunds that have none
    (repair after a missed signal, or a refund made in the Stripe dashboard)."""
    return {**receipts.receipts_issue_missing(), **receipts.credit_notes_issue_missing()}


REPORT_SCHEDULES = [
    # (name, func, minutes between runs)
    ("reports: refresh analytics", "reports.jobs.refresh_analytics", 5),
    ("reports: issue missing receipts", "reports.jobs.issue_missing_receipts", 60),
]


def ensure_report_schedules() -> dict:
    """Create or update the django-q2 schedules of this app, by name (idempotent). Catch-up
    is off cluster-wide (Q_CLUSTER["catch_up"] = False): a missed refresh is simply superseded
    by the next one."""
    from django_q.models import Schedule

    created = 0
    for name, func, minutes in REPORT_SCHEDULES:
        _, was_created = Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
        created += was_created
    return {"schedules": len(REPORT_SCHEDULES), "created": created}
