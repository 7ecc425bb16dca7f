"""Make a few new student purchases in the demo's localstripe, so that its signed webhooks
reach the running back-office (webhook log, new payments, a declined card)."""

from django.core.management.base import BaseCommand, CommandError

from payments import gateway
from payments.exceptions import CardDeclined, GatewayError

PURCHASES = [
    # (amount in cents, card, who)
    (4900, gateway.TEST_CARD_SUCCEEDS, "Live Demo Student A"),
    (12900, gateway.TEST_CARD_SUCCEEDS, "Live Demo Student B"),
    (2900, gateway.TEST_CARD_DECLINES, "Live Demo Student C"),
]


class Command(BaseCommand):
    help = "Demo only: new purchases in localstripe, delivered back to us as webhooks."

    def add_arguments(self, parser):
        parser.add_argument("--key", default="demo-activity", help="Idempotency key prefix.")

    def handle(self, *args, key, **options):
        for index, (amount, card, name) in enumerate(PURCHASES):
            email = f"{name.lower().replace(' ', '.')}@example.com"
            try:
                purchase = gateway.stripe_test_purchase_create(
                    amount=amount,
                    currency="usd",
                    email=email,
                    name=name,
                    key=f"{key}:{index}",
                    card_number=card,
                )
                self.stdout.write(
                    f"  {purchase.payment_intent.id}: {purchase.payment_intent.status}"
                )
            except CardDeclined as exc:
                self.stdout.write(f"  {email}: declined ({exc})")
            except (GatewayError, RuntimeError) as exc:
                raise CommandError(f"Could not create demo purchases: {exc}") from exc
