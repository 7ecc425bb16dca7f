"""Make a few new student purchases in the demo's localstripe, so that its signed webhooks
reach the running back-office (webhook log, new payments, a declined card)."""

from django.core.management.base import BaseCommand, CommandError

from management.demo_purchases import (
    TEST_PAYMENT_METHOD_DECLINES,
    TEST_PAYMENT_METHOD_SUCCEEDS,
    demo_purchase_create,
)
from payments.exceptions import CardDeclined, GatewayError

PURCHASES = [
    # (amount in cents, Stripe test payment method, who)
    (4900, TEST_PAYMENT_METHOD_SUCCEEDS, "Live Demo Student A"),
    (12900, TEST_PAYMENT_METHOD_SUCCEEDS, "Live Demo Student B"),
    (2900, TEST_PAYMENT_METHOD_DECLINES, "Live Demo Student C"),
]


class Command(BaseCommand):
    help = "Demo only: new purchases in localstripe, delivered back to us as webhooks."

    def add_arguments(self, parser):
        parser.add_argument("--key", default="demo-activity", help="Idempotency key prefix.")

    def handle(self, *args, key, **options):
        for index, (amount, payment_method, name) in enumerate(PURCHASES):
            email = f"{name.lower().replace(' ', '.')}@example.com"
            try:
                purchase = demo_purchase_create(
                    amount=amount,
                    currency="usd",
                    email=email,
                    name=name,
                    key=f"{key}:{index}",
                    test_payment_method=payment_method,
                )
                self.stdout.write(
                    f"  {purchase.payment_intent.id}: {purchase.payment_intent.status}"
                )
            except CardDeclined as exc:
                self.stdout.write(f"  {email}: declined ({exc})")
            except (GatewayError, RuntimeError) as exc:
                raise CommandError(f"Could not create demo purchases: {exc}") from exc
