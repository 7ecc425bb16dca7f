"""The payment report (reports.selectors.payment_report) as a file: JSON, CSV or PDF.
`manage_payments --payment-report` calls it through management/jobs.py."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from .exports import write_csv
from .pdf import payment_report_pdf
from .selectors import payment_report

ERR_UNKNOWN_FORMAT = "Unknown report format {format!r}: choose json, csv or pdf."
ERR_PDF_NEEDS_OUTPUT = "A PDF report needs --output PATH."
REPORT_FORMATS = ("json", "csv", "pdf")


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


def payment_report_write(
    *, period: str, fmt: str = "json", output: str | None = None, end: date | None = None
) -> dict:
    """Build the report from the rollups; write it to `output` when given. Returns the report
    (json), the CSV text (csv without output) or a summary with the path written. Raises
    ValueError for an unknown format, or a PDF without an output path."""
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
