"""`python manage.py manage_payments [action]`: the operations entry point for people and cron.

Thin by design: it parses flags, calls a job in management/jobs.py and prints its result.
Without an action it prints the system overview. One action per call: two actions given
together are a usage error, never a silent choice of one.

Exit status (cron and monitoring read it; the same list is in `--help`):
  0   the job did its work.
  1   the job ran and failed: a Stripe sync pass failed (the run is recorded as failed, with
      each object type's outcome), refund requests were left with an unknown Stripe
      outcome (Stripe unreachable; they are retried by the next run), dispute deadline
      alerts were due with nobody to receive them, a fraud rule raised (recorded as a
      FraudRuleFailure; the other rules still ran), or payouts were left with an unknown
      Stripe outcome (retried by the next run).
  2   bad usage: conflicting or misplaced flags, a bad date, a payout currency with no
      configured minimum (nothing was done).
  75  EX_TEMPFAIL: the Stripe sync or the fraud detection was skipped because another run
      holds its lock; try again later (a skipped sync run is recorded).
"""

import argparse
import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from management import jobs
from payments.services.payouts import PayoutError

EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for bad usage; our CommandErrors for usage use it too
EXIT_LOCKED = 75  # sysexits.h EX_TEMPFAIL: "try again later"
EXIT_CODES_HELP = (
    f"Exit status: 0 done; {EXIT_FAILED} the job failed (a Stripe sync pass failed, "
    "refund requests or payouts left with an unknown Stripe outcome, dispute alerts due "
    "with no recipient, or a fraud rule failed); "
    f"{EXIT_USAGE} bad usage (conflicting or misplaced flags); {EXIT_LOCKED} the Stripe "
    "sync was skipped because another run holds its lock (try again later; the same for "
    "--detect-fraud)."
)

ERR_DATE_AND_RANGE = "Give either --date or --from/--to, not both."
ERR_HALF_RANGE = "--from and --to go together."
ERR_RANGE_FLAGS = "--from and --to go with --generate-analytics."
ERR_DATE_FLAG = "--date goes with --generate-analytics or --payment-report."
ERR_REPORT_FLAGS = "--format and --output go with --payment-report."
ERR_DRY_RUN_FLAG = "--dry-run goes with --fix-inconsistencies or --create-payouts."
ERR_CURRENCY_FLAG = "--currency goes with --create-payouts."
ERR_SYNC_FLAGS = "--full and --since go with --sync-stripe (--since also with --detect-fraud)."
ERR_SINCE_FLAG = "--since goes with --sync-stripe or --detect-fraud."
ERR_SYNC_FULL_AND_SINCE = "Give either --full or --since, not both."


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def _usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_USAGE)


def _sync_summary(result: dict) -> str:
    counts = "; ".join(
        f"{kind} +{c['created']} ~{c['updated']} ={c['unchanged']}"
        + (f" skipped {c['skipped']}" if c["skipped"] else "")
        + (" FAILED" if result["outcomes"].get(kind, {}).get("status") == "failed" else "")
        for kind, c in result["counts"].items()
    )
    return (
        f"Stripe sync #{result['run']} {result['status']}: {counts or 'nothing read'}; "
        f"{result['api_calls']} API calls ({result['api_retries']} retries), "
        f"{result['pages']} pages, {result['seconds']:.1f}s"
    )


class Command(BaseCommand):
    help = (
        "Payments operations: one of --sync-stripe, --generate-analytics, --payment-report, "
        "--issue-receipts, --process-pending-refunds, --dispute-alerts, --detect-fraud, "
        "--create-payouts, --process-payouts, --expire-hours, --fix-inconsistencies, "
        "--cleanup-old-data. "
        "No action: the overview."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EXIT_CODES_HELP
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print results as JSON.")
        # The actions: at most one per call (argparse refuses two, exit status 2).
        actions = parser.add_mutually_exclusive_group()
        # Stripe sync (payments/sync_runs.py).
        actions.add_argument(
            "--sync-stripe", action="store_true", help="Mirror Stripe (incremental by default)."
        )
        # Refunds (refunds/services.py).
        actions.add_argument(
            "--process-pending-refunds",
            action="store_true",
            help="Refund approved requests through Stripe and resume interrupted ones.",
        )
        # Instructor payouts (payments/services/payouts.py).
        actions.add_argument(
            "--create-payouts",
            action="store_true",
            help="Create one pending payout per instructor and currency whose available "
            "balance reaches PAYOUT_MINIMUM (--currency C: only C; --dry-run: only report).",
        )
        actions.add_argument(
            "--process-payouts",
            action="store_true",
            help="Send approved Stripe Connect payouts and resume interrupted ones.",
        )
        # Dispute deadline alerts (payments/services/dispute_alerts.py).
        actions.add_argument(
            "--dispute-alerts",
            action="store_true",
            help="E-mail the finance group the 7/3/1-day dispute deadline alerts not sent yet.",
        )
        # Fraud rules (payments/fraud_rules.py).
        actions.add_argument(
            "--detect-fraud",
            action="store_true",
            help="Run the fraud rules over the last FRAUD_LOOKBACK_HOURS (or --since D) and "
            "open alerts.",
        )
        # Reports (reports/rollups.py, receipts.py, payment_report_files.py).
        actions.add_argument(
            "--generate-analytics",
            action="store_true",
            help="Upsert the daily rollups: today, --date D, or --from D --to D (inclusive).",
        )
        actions.add_argument(
            "--payment-report",
            choices=["daily", "weekly", "monthly"],
            help="Report of the last 1/7/30 days ending yesterday (or --date), from rollups.",
        )
        actions.add_argument(
            "--issue-receipts",
            action="store_true",
            help="Issue receipts for captured payments that have none.",
        )
        # Prepaid hours (payments/hours.py).
        actions.add_argument(
            "--expire-hours",
            action="store_true",
            help="Take the minutes left in expired hour packages off the students' balances.",
        )
        # Repairs and retention (management/maintenance.py).
        actions.add_argument(
            "--fix-inconsistencies",
            action="store_true",
            help="Repair derived columns (refunded amounts, net, balances); audited.",
        )
        actions.add_argument(
            "--cleanup-old-data",
            action="store_true",
            help="Delete processed webhook events, sync runs and task results past retention.",
        )

        # Modifiers: each belongs to one action, and is refused with any other.
        parser.add_argument("--full", action="store_true", help="With --sync-stripe: backfill all.")
        parser.add_argument(
            "--since",
            type=_iso_date,
            help="With --sync-stripe: re-read objects created since YYYY-MM-DD. With "
            "--detect-fraud: examine payments created since YYYY-MM-DD.",
        )
        parser.add_argument("--date", type=_iso_date, help="A day, YYYY-MM-DD.")
        parser.add_argument("--from", dest="date_from", type=_iso_date, help="First day.")
        parser.add_argument("--to", dest="date_to", type=_iso_date, help="Last day.")
        parser.add_argument(
            "--format",
            choices=["json", "csv", "pdf"],
            help="With --payment-report (default json).",
        )
        parser.add_argument("--output", help="With --payment-report: write it to this file.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --fix-inconsistencies or --create-payouts: only report.",
        )
        parser.add_argument(
            "--currency", help="With --create-payouts: only this currency (e.g. usd)."
        )

    def handle(self, *args, **options):
        self._check_modifiers(options)
        as_json = options["json"]
        if options["fix_inconsistencies"]:
            return self._print(jobs.fix_inconsistencies(dry_run=options["dry_run"]), as_json)
        if options["create_payouts"]:
            return self._create_payouts(options)
        if options["process_payouts"]:
            return self._process_payouts(as_json)
        if options["expire_hours"]:
            return self._print(jobs.expire_hours(), as_json)
        if options["cleanup_old_data"]:
            return self._print(jobs.cleanup_old_data(), as_json)
        if options["sync_stripe"]:
            return self._sync_stripe(options)
        if options["process_pending_refunds"]:
            return self._process_pending_refunds(as_json)
        if options["dispute_alerts"]:
            return self._dispute_alerts(as_json)
        if options["detect_fraud"]:
            return self._detect_fraud(options)
        if options["generate_analytics"] or options["payment_report"] or options["issue_receipts"]:
            return self._reports(options)
        self._print(jobs.system_overview(), as_json)

    @staticmethod
    def _check_modifiers(options) -> None:
        """Refuse a modifier without its action: `--cleanup-old-data --dry-run` must not
        delete anything while its caller believes it is a dry run."""
        if options["full"] and not options["sync_stripe"]:
            raise _usage_error(ERR_SYNC_FLAGS)
        if options["since"] and not (options["sync_stripe"] or options["detect_fraud"]):
            raise _usage_error(ERR_SINCE_FLAG)
        if options["full"] and options["since"]:
            raise _usage_error(ERR_SYNC_FULL_AND_SINCE)
        if options["dry_run"] and not (options["fix_inconsistencies"] or options["create_payouts"]):
            raise _usage_error(ERR_DRY_RUN_FLAG)
        if options["currency"] and not options["create_payouts"]:
            raise _usage_error(ERR_CURRENCY_FLAG)
        if (options["format"] or options["output"]) and not options["payment_report"]:
            raise _usage_error(ERR_REPORT_FLAGS)
        if options["date_from"] or options["date_to"]:
            if not options["generate_analytics"]:
                raise _usage_error(ERR_RANGE_FLAGS)
            if options["date"]:
                raise _usage_error(ERR_DATE_AND_RANGE)
            if bool(options["date_from"]) != bool(options["date_to"]):
                raise _usage_error(ERR_HALF_RANGE)
        if options["date"] and not (options["generate_analytics"] or options["payment_report"]):
            raise _usage_error(ERR_DATE_FLAG)

    def _process_pending_refunds(self, as_json: bool) -> None:
        result = jobs.process_pending_refunds()
        self._print(result, as_json)
        error = jobs.refunds_unknown_outcome_error(result)
        if error:
            raise CommandError(error, returncode=EXIT_FAILED)

    def _create_payouts(self, options) -> None:
        try:
            result = jobs.create_payouts(currency=options["currency"], dry_run=options["dry_run"])
        except PayoutError as exc:
            # A currency nobody configured a minimum for: nothing was done.
            raise _usage_error(str(exc)) from exc
        self._print(result, options["json"])

    def _process_payouts(self, as_json: bool) -> None:
        result = jobs.process_payouts()
        self._print(result, as_json)
        error = jobs.payouts_unknown_outcome_error(result)
        if error:
            raise CommandError(error, returncode=EXIT_FAILED)

    def _dispute_alerts(self, as_json: bool) -> None:
        result = jobs.dispute_deadline_alerts()
        self._print(result, as_json)
        if result["error"]:
            raise CommandError(result["error"], returncode=EXIT_FAILED)

    def _detect_fraud(self, options) -> None:
        """Exit status 1 when a rule failed, 75 when another run held the lock."""
        result = jobs.detect_fraud(since=options["since"])
        self._print(result, options["json"])
        if result["status"] == "skipped":
            raise CommandError(result["errors"]["lock"], returncode=EXIT_LOCKED)
        error = jobs.fraud_rules_error(result)
        if error:
            raise CommandError(error, returncode=EXIT_FAILED)

    def _reports(self, options) -> None:
        try:
            if options["generate_analytics"]:
                start = options["date"] or options["date_from"]
                end = options["date"] or options["date_to"]
                result = jobs.generate_analytics_job(start=start, end=end)
            elif options["payment_report"]:
                fmt = options["format"] or "json"
                result = jobs.payment_report_job(
                    period=options["payment_report"],
                    fmt=fmt,
                    output=options["output"],
                    end=options["date"],
                )
                if fmt == "json" and not options["output"]:
                    self.stdout.write(json.dumps(result, indent=2))
                    return
                if "csv" in result:
                    self.stdout.write(result["csv"], ending="")
                    return
            else:
                result = jobs.issue_missing_receipts()
        except ValueError as exc:
            # An impossible request (a PDF without --output, an inverted range): usage.
            raise _usage_error(str(exc)) from exc
        self._print(result, as_json=options["json"])

    def _sync_stripe(self, options) -> None:
        """A live progress line on a terminal, one summary line otherwise (cron, logs).
        Exit status 1 when the run failed, 75 when another run held the lock."""
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
            raise CommandError(
                jobs.ERR_SYNC_FAILED.format(error=result["error"]), returncode=EXIT_FAILED
            )
        if result["status"] == "skipped":
            raise CommandError(result["error"], returncode=EXIT_LOCKED)

    def _print(self, result: dict, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result, default=str, indent=2))
            return
        for key, value in result.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
            self.stdout.write(f"{key.replace('_', ' '):<24} {value}")
