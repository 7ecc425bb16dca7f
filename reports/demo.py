"""Demo set-up for reports: rollups over the demo's days and the receipts of its payments.
(The schedules that keep them current are the job registry's: management/schedules.py.)"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .receipts import credit_notes_issue_missing, receipts_issue_missing
from .rollups import generate_analytics


def seed_reports(*, days: int, stdout=None) -> dict:
    """Rollups of the last `days` days, today included, and every missing receipt and credit
    note. The caller knows how far back its data reaches. Idempotent: safe after every seed."""
    today = timezone.localdate()
    result = {
        "rollups": generate_analytics(start=today - timedelta(days=days - 1), end=today).as_dict(),
        **receipts_issue_missing(),
        **credit_notes_issue_missing(),
    }
    if stdout is not None:
        rollups = result["rollups"]
        stdout.write(
            f"Reports: {rollups['created'] + rollups['updated']} rollup rows written, "
            f"{result['receipts_issued']:,} receipts issued"
        )
    return result
