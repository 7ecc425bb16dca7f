"""`python manage.py manage_payments [flag]`: the operations entry point for people and cron.

Thin by design: it parses flags, calls a job in management/jobs.py and prints its result.
Without a flag it prints the system overview. Exits non-zero when a job fails so cron sees it.
"""

import json

from django.core.management.base import BaseCommand

from management import jobs


class Command(BaseCommand):
    help = "Payments operations: sync, analytics, refunds, reports, repairs. No flag: overview."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print results as JSON.")
        # Refunds (refunds/jobs.py).
        parser.add_argument(
            "--process-pending-refunds",
            action="store_true",
            help="Refund approved requests through Stripe and resume interrupted ones.",
        )

    def handle(self, *args, **options):
        if options["process_pending_refunds"]:
            return self._print(jobs.process_pending_refunds(), as_json=options["json"])
        self._print(jobs.system_overview(), as_json=options["json"])

    def _print(self, result: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result, default=str, indent=2))
            return
        for key, value in result.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
            self.stdout.write(f"{key.replace('_', ' '):<24} {value}")
