from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from .base import CurrencyField, MinorUnitsField, TimestampedModel
from .payment_method import PaymentMethodType


class Payment(TimestampedModel):
    """One Stripe PaymentIntent and its latest charge. Amounts are minor units of `currency`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        REQUIRES_ACTION = "requires_action", "Requires action"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        DISPUTED = "disputed", "Disputed"

    class ProductKind(models.TextChoices):
        COURSE = "course", "Course"
        EVENT = "event", "Event"
        HOUR_PACKAGE = "hour_package", "Hour package"
        SUBSCRIPTION = "subscription", "Subscription"

    # Statuses in which money was captured (and so fees, net and refunds apply).
    CAPTURED_STATUSES = frozenset(
        {Status.SUCCEEDED, Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.DISPUTED}
    )

    stripe_payment_intent_id = models.CharField("Payment intent", max_length=255, unique=True)
    stripe_charge_id = models.CharField("Charge", max_length=255, blank=True)
    # No single-column index: payment_customer_created_idx (customer, -created) covers it.
    customer = models.ForeignKey(
        "payments.Customer",
        related_name="payments",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
    )
    payment_method = models.ForeignKey(
        "payments.PaymentMethod",
        related_name="payments",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
    )
    instructor = models.ForeignKey(
        "payments.Instructor",
        related_name="payments",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )

    amount = MinorUnitsField(help_text="Minor units of the currency.")
    currency = CurrencyField()
    # The derived columns (status, amount_refunded, stripe_fee, platform_fee, net) are written
    # only by payments/ledger.py's rules, so every screen and report that reads them agrees.
    amount_refunded = MinorUnitsField(help_text="Minor units refunded (payments/ledger.py).")
    stripe_fee = MinorUnitsField(help_text="Stripe's fee from the balance transaction.")
    platform_fee = MinorUnitsField(
        help_text="Our commission after what refunds returned (payments/ledger.py)."
    )
    net = MinorUnitsField(
        help_text="Net to the instructor after fees, refunds and lost disputes (ledger)."
    )
    # What Stripe's charge last said, kept so the ledger can re-derive without a snapshot.
    stripe_amount_refunded = MinorUnitsField(help_text="The charge's amount_refunded in Stripe.")
    charge_disputed = models.BooleanField(default=False, help_text="The charge's `disputed`.")

    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING)
    stripe_status = models.CharField("Stripe status", max_length=64, blank=True)
    payment_method_type = models.CharField(
        "Method", max_length=32, choices=PaymentMethodType.choices, default=PaymentMethodType.CARD
    )
    failure_code = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)

    # From the PaymentIntent's metadata (payments/metadata.py: the contract); "" when the
    # checkout did not send a valid value, and then named in `metadata_problems`.
    product_kind = models.CharField(
        "Product", max_length=32, choices=ProductKind.choices, blank=True, default=""
    )
    product_id = models.CharField(max_length=64, blank=True)
    product_name = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=500, blank=True)
    # Hours bought, in minutes, when product_kind is an hour package.
    package_minutes = models.PositiveIntegerField(null=True, blank=True)
    coupon_code = models.CharField(max_length=64, blank=True)
    booking_id = models.CharField(max_length=64, blank=True)
    metadata_problems = models.JSONField(
        default=list, blank=True, help_text="What the metadata contract found missing or invalid."
    )
    billing_details = models.JSONField(default=dict, blank=True)
    # The buyer's IP, from the metadata contract's `client_ip` (Stripe's charge has none).
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # Stripe's card fingerprint (payment_method_details.card.fingerprint): one per card
    # number, the same across customers. db_default: raw seeds (benchmarks) may leave it out.
    card_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    metadata = models.JSONField(default=dict, blank=True)
    livemode = models.BooleanField(default=False)

    created = models.DateTimeField(help_text="When the payment intent was created in Stripe.")
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["metadata", "billing_details"])

    class Meta:
        ordering = ["-created", "-id"]
        # Declared here (not only by migration 0004's data step) so that post_migrate makes it
        # again after a test database flush, like every other permission.
        permissions = [("retry_payment", "Can retry failed payments")]
        indexes = [
            # The default ordering, and each filter followed by that ordering, so that a
            # filtered page is an index range scan with LIMIT, not a sort of the table.
            models.Index(fields=["-created", "-id"], name="payment_created_idx"),
            models.Index(fields=["status", "-created", "-id"], name="payment_status_created_idx"),
            models.Index(
                fields=["payment_method_type", "-created", "-id"], name="payment_method_created_idx"
            ),
            models.Index(
                fields=["currency", "-created", "-id"], name="payment_currency_created_idx"
            ),
            models.Index(fields=["livemode", "-created", "-id"], name="payment_live_created_idx"),
            models.Index(fields=["currency", "amount"], name="payment_currency_amount_idx"),
            models.Index(fields=["customer", "-created"], name="payment_customer_created_idx"),
            models.Index(fields=["stripe_charge_id"], name="payment_charge_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_payment_intent_id"), name="payment_pi_upper_idx"),
            models.Index(Upper("stripe_charge_id"), name="payment_charge_upper_idx"),
            # The fraud rules' windows (payments/fraud_rules.py): one card or one IP across
            # customers over time. Partial: most rows have no IP, non-card ones no fingerprint.
            models.Index(
                fields=["card_fingerprint", "created"],
                name="payment_fingerprint_idx",
                condition=~Q(card_fingerprint=""),
            ),
            models.Index(
                fields=["ip_address", "created"],
                name="payment_ip_created_idx",
                condition=Q(ip_address__isnull=False),
            ),
            # A coupon's conversion (payments/coupon_stats.py): the payments that carried its
            # code. Partial: most payments carry none.
            models.Index(
                fields=["coupon_code", "created"],
                name="payment_coupon_created_idx",
                condition=~Q(coupon_code=""),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount")),
                name="payment_refunded_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(stripe_fee__gte=0) & Q(platform_fee__gte=0),
                name="payment_fees_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(net__lte=F("amount")), name="payment_net_within_amount"
            ),
        ]

    def __str__(self) -> str:
        return self.stripe_payment_intent_id

    @property
    def is_captured(self) -> bool:
        return self.status in self.CAPTURED_STATUSES
