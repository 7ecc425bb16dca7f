"""Demo set-up for reports: rollups over the demo's days, receipts, and the schedules that
keep them current while the demo runs."""

from __future__ import annotations

from management.demo_data import DAYS

from .jobs import backfill_analytics, ensure_report_schedules, issue_missing_receipts


def seed_reports(*, stdout=None) -> dict:
    """Idempotent: safe to run after every seed."""
    # DAYS + 1: the demo's payments reach back DAYS days from the current hour.
    result = {
        "rollups": backfill_analytics(days=DAYS + 1),
        **issue_missing_receipts(),
        **ensure_report_schedules(),
    }
    if stdout is not None:
        rollups = result["rollups"]
        stdout.write(
            f"Reports: {rollups['created'] + rollups['updated']} rollup rows written, "
            f"{result['receipts_issued']:,} receipts issued, "
            f"{result['schedules']} schedules in place"
        )
    return result
