from django.core.management.base import BaseCommand, CommandError

from management import demo_data
from management.demo_connect import bank_accounts_seed, connected_accounts_create
from management.demo_counts import demo_count_lines
from management.demo_coupons import seed_coupon_purchases, seed_coupons
from management.demo_customer_adjustments import seed_customer_adjustments
from management.demo_disputes import seed_open_disputes
from management.demo_fraud import seed_fraud_reviews
from management.demo_hours import seed_hour_packages
from management.demo_payouts import seed_payouts
from management.demo_refunds import seed_refund_requests
from management.demo_subscriptions import seed_subscriptions
from management.schedules import ensure_job_schedules
from payments.models import Payment
from reports.demo import seed_reports


class Command(BaseCommand):
    help = "Fill the database with deterministic demo data (customers, payments, refunds...)."

    def add_arguments(self, parser):
        parser.add_argument("--payments", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when payments already exist."
        )

    def handle(self, *args, payments, seed, if_empty, **options):
        if payments < 0:
            raise CommandError("--payments must be >= 0")
        if if_empty and Payment.objects.exists():
            self.stdout.write("Demo data already present; nothing to do.")
            self._write_counts()
            return
        # Coupons first (through the services, pushed to localstripe): the generator's
        # payments name some of their codes, and the payment upsert records the redemptions.
        seed_coupons(stdout=self.stdout)
        # Most instructors get a connected account in localstripe first, so their payments
        # name it and payouts to them are real transfers; the rest are paid by bank transfer.
        generator = demo_data.DemoGenerator(
            seed=seed, stdout=self.stdout, connected_accounts=connected_accounts_create
        )
        generator.run(demo_data.demo_size(payments))
        bank_accounts_seed(seed=seed)
        # Purchases through localstripe with a quoted coupon in their metadata.
        seed_coupon_purchases(stdout=self.stdout)
        # Refund requests of every priority and status; pending ones on localstripe payments.
        seed_refund_requests(seed=seed, stdout=self.stdout)
        # Hour packages bought through localstripe (two near expiry) and their lessons
        # through the import service.
        seed_hour_packages(seed=seed, stdout=self.stdout)
        # Disputes that need a response: real ones in localstripe, so responding works.
        seed_open_disputes(seed=seed, stdout=self.stdout)
        # A few fraud alerts in each review state and one blocked customer, through the
        # review services (audited as staff actions).
        seed_fraud_reviews(stdout=self.stdout)
        # Subscriptions in every status and cards expiring this month, made in localstripe
        # and mirrored by the sync's subscription pass.
        seed_subscriptions(seed=seed, stdout=self.stdout)
        # A payout run over the earnings, its payouts in every status (Connect ones through
        # localstripe), a clawback and earning adjustments, through the payout services.
        seed_payouts(stdout=self.stdout)
        # Customer adjustments (money in the peer's customer balances, hours in the hours
        # ledger): pending ones in the queue, a few applied, one rejected.
        seed_customer_adjustments(stdout=self.stdout)
        # Last: rollups and receipts summarise everything seeded above. DAYS + 1: the demo's
        # payments reach back DAYS days from the current hour.
        seed_reports(days=demo_data.DAYS + 1, stdout=self.stdout)
        # The schedules that keep the sync, refunds and rollups going while the demo runs
        # (also ensured after every `migrate`).
        ensure_job_schedules()
        self._write_counts()

    def _write_counts(self) -> None:
        # Counted as the screens count (management/demo_counts.py), never from what the
        # seeding meant to write.
        for line in demo_count_lines():
            self.stdout.write(self.style.SUCCESS(line))
