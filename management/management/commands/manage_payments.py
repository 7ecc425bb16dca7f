"""`python manage.py manage_payments [flag]`: the operations entry point for people and cron.

Thin by design: it parses flags, calls a job in management/jobs.py and prints its result.
Without a flag it prints the system overview. Exits non-zero when a job fails so cron sees it.
"""

import argparse
import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from management import jobs

ERR_DATE_AND_RANGE = "Give either --date or --from/--to, not both."
ERR_HALF_RANGE = "--from and --to go together."


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


ERR_SYNC_FLAGS = "--full and --since go with --sync-stripe."
ERR_SYNC_FULL_AND_SINCE = "Give either --full or --since, not both."


def _sync_summary(result: dict) -> str:
    counts = "; ".join(
        f"{kind} +{c['created']} ~{c['updated']} ={c['unchanged']}"
        + (f" skipped {c['skipped']}" if c["skipped"] else "")
        for kind, c in result["counts"].items()
    )
    return (
        f"Stripe sync #{result['run']} {result['status']}: {counts or 'nothing read'}; "
        f"{result['api_calls']} API calls ({result['api_retries']} retries), "
        f"{result['pages']} pages, {result['seconds']:.1f}s"
    )


class Command(BaseCommand):
    help = "Payments operations: sync, analytics, refunds, reports, repairs. No flag: overview."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print results as JSON.")
        # Stripe sync (payments/jobs.py).
        parser.add_argument(
            "--sync-stripe", action="store_true", help="Mirror Stripe (incremental by default)."
        )
        parser.add_argument("--full", action="store_true", help="With --sync-stripe: backfill all.")
        parser.add_argument(
            "--since",
            type=_iso_date,
            help="With --sync-stripe: re-read objects created since YYYY-MM-DD.",
        )
        # Refunds (refunds/jobs.py).
        parser.add_argument(
            "--process-pending-refunds",
            action="store_true",
            help="Refund approved requests through Stripe and resume interrupted ones.",
        )
        # Reports (reports/jobs.py).
        parser.add_argument(
            "--generate-analytics",
            action="store_true",
            help="Upsert the daily rollups: today, --date D, or --from D --to D (inclusive).",
        )
        parser.add_argument("--date", type=_iso_date, help="A day, YYYY-MM-DD.")
        parser.add_argument("--from", dest="date_from", type=_iso_date, help="First day.")
        parser.add_argument("--to", dest="date_to", type=_iso_date, help="Last day.")
        parser.add_argument(
            "--payment-report",
            choices=["daily", "weekly", "monthly"],
            help="Report of the last 1/7/30 days ending yesterday (or --date), from rollups.",
        )
        parser.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
        parser.add_argument("--output", help="Write the report to this file.")
        parser.add_argument(
            "--issue-receipts",
            action="store_true",
            help="Issue receipts for captured payments that have none.",
        )

        # Repairs and retention (management/maintenance.py).
        parser.add_argument(
            "--fix-inconsistencies",
            action="store_true",
            help="Repair derived columns (refunded amounts, net, balances); audited.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="With --fix-inconsistencies: only report."
        )
        parser.add_argument(
            "--cleanup-old-data",
            action="store_true",
            help="Delete processed webhook events, sync runs and task results past retention.",
        )

    def handle(self, *args, **options):
        if options["fix_inconsistencies"]:
            result = jobs.fix_inconsistencies(dry_run=options["dry_run"])
            return self._print(result, as_json=options["json"])
        if options["cleanup_old_data"]:
            return self._print(jobs.cleanup_old_data(), as_json=options["json"])
        if options["sync_stripe"] or options["full"] or options["since"]:
            return self._sync_stripe(options)
        if options["process_pending_refunds"]:
            return self._print(jobs.process_pending_refunds(), as_json=options["json"])
        if options["generate_analytics"] or options["payment_report"] or options["issue_receipts"]:
            return self._reports(options)
        self._print(jobs.system_overview(), as_json=options["json"])

    def _reports(self, options) -> None:
        try:
            if options["generate_analytics"]:
                if options["date"] and (options["date_from"] or options["date_to"]):
                    raise CommandError(ERR_DATE_AND_RANGE)
                if bool(options["date_from"]) != bool(options["date_to"]):
                    raise CommandError(ERR_HALF_RANGE)
                start = options["date"] or options["date_from"]
                end = options["date"] or options["date_to"]
                result = jobs.generate_analytics_job(start=start, end=end)
            elif options["payment_report"]:
                result = jobs.payment_report_job(
                    period=options["payment_report"],
                    fmt=options["format"],
                    output=options["output"],
                    end=options["date"],
                )
                if options["format"] == "json" and not options["output"]:
                    self.stdout.write(json.dumps(result, indent=2))
                    return
                if "csv" in result:
                    self.stdout.write(result["csv"], ending="")
                    return
            else:
                result = jobs.issue_missing_receipts()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self._print(result, as_json=options["json"])

    def _sync_stripe(self, options) -> None:
        """A live progress line on a terminal, one summary line otherwise (cron, logs);
        CommandError (exit 1) when the run failed."""
        if not options["sync_stripe"]:
            raise CommandError(ERR_SYNC_FLAGS)
        if options["full"] and options["since"]:
            raise CommandError(ERR_SYNC_FULL_AND_SINCE)
        tty = self.stdout.isatty()
        seen: dict[str, int] = {}

        def progress(object_type: str, objects: int, pages: int) -> None:
            seen[object_type] = objects
            width = min(40, pages)
            line = "  ".join(f"{k} {v:,}" for k, v in seen.items())
            self.stdout.write(f"\r[{'#' * width:<40}] {pages} pages  {line}", ending="")
            self.stdout.flush()

        result = jobs.stripe_sync(
            full=options["full"], since=options["since"], progress=progress if tty else None
        )
        if tty and seen:
            self.stdout.write("")
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str, indent=2))
        else:
            self.stdout.write(_sync_summary(result))
        if result["status"] == "failed":
            raise CommandError(f"Stripe sync failed: {result['error']}")
        if result["status"] == "skipped":
            self.stderr.write(result["error"])

    def _print(self, result: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result, default=str, indent=2))
            return
        for key, value in result.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
            self.stdout.write(f"{key.replace('_', ' '):<24} {value}")
