"""The payment report (reports.selectors.payment_report) as a file: JSON, CSV or PDF.
`manage_payments --payment-report` calls it through management/jobs.py."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from backoffice.spreadsheet import neutralise

from .export_columns import (
    CURRENCY_HEADER,
    DATE,
    MONEY,
    PAYMENT_REPORT_COLUMNS,
    TEXT,
    TIME_ZONE,
    Column,
    headers,
    major,
    site_time_zone_name,
    text_cell,
)
from .exports import write_csv
from .pdf import payment_report_pdf
from .selectors import payment_report

ERR_UNKNOWN_FORMAT = "Unknown report format {format!r}: choose json, csv or pdf."
ERR_PDF_NEEDS_OUTPUT = "A PDF report needs --output PATH."
REPORT_FORMATS = ("json", "csv", "pdf")


def _report_cell(column: Column, report: dict, code: str, data: dict):
    """One cell of the report's CSV, with the units and time zone of every export
    (reports/export_columns.py): money in major units, minor units only in *_minor."""
    if column.kind == TIME_ZONE:
        return site_time_zone_name()
    if column.header == CURRENCY_HEADER:
        return code
    if column.kind == DATE:
        return date.fromisoformat(report[column.path])
    value = data
    for key in column.path.split("__"):
        value = value[key]
    if column.kind == MONEY:
        return major(value, code)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def report_csv_lines(report: dict):
    """The report as CSV: one row per currency, columns PAYMENT_REPORT_COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers(PAYMENT_REPORT_COLUMNS))
    for code, data in report["currencies"].items():
        # Only text is neutralised: a negative net stays a number.
        writer.writerow(
            [
                neutralise(cell) if column.kind == TEXT else cell
                for column in PAYMENT_REPORT_COLUMNS
                for cell in [text_cell(_report_cell(column, report, code, data))]
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
