from django.db import models
from django.db.models.functions import Upper

from .base import TimestampedModel


class PaymentMethodType(models.TextChoices):
    CARD = "card", "Card"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    SEPA_DEBIT = "sepa_debit", "SEPA debit"
    WALLET = "wallet", "Wallet"
    LINK = "link", "Link"
    OTHER = "other", "Other"


class PaymentMethod(TimestampedModel):
    stripe_id = models.CharField("Stripe payment method id", max_length=255, unique=True)
    customer = models.ForeignKey(
        "payments.Customer",
        related_name="payment_methods",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
    )
    type = models.CharField(max_length=32, choices=PaymentMethodType.choices)
    card_brand = models.CharField(max_length=32, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    # Stripe's card.fingerprint: one per card number, the same across customers.
    card_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    is_default = models.BooleanField(default=False)
    created = models.DateTimeField()

    class Meta:
        ordering = ["-created", "-id"]
        # Changed at Stripe only through payments.services.billing_actions.
        permissions = [
            (
                "manage_saved_payment_method",
                "Can make a saved payment method the default and detach saved ones",
            )
        ]
        indexes = [
            # The many-payment-methods fraud rule counts a customer's methods by `created`.
            models.Index(fields=["customer", "created"], name="pm_customer_created_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="pm_stripe_id_upper_idx"),
            # The expiry filter (expired / expiring this month) on the payment methods list.
            models.Index(
                fields=["card_exp_year", "card_exp_month"],
                name="pm_card_expiry_idx",
                condition=models.Q(card_exp_year__isnull=False),
            ),
            models.Index(
                fields=["card_fingerprint"],
                name="pm_fingerprint_idx",
                condition=~models.Q(card_fingerprint=""),
            ),
        ]
        constraints = [
            # At most one default payment method per customer.
            models.UniqueConstraint(
                fields=["customer"],
                condition=models.Q(is_default=True),
                name="one_default_payment_method_per_customer",
            ),
            models.CheckConstraint(
                condition=models.Q(card_exp_month__isnull=True)
                | models.Q(card_exp_month__gte=1, card_exp_month__lte=12),
                name="payment_method_exp_month_valid",
            ),
        ]

    def __str__(self) -> str:
        if self.type == PaymentMethodType.CARD and self.card_last4:
            return f"{self.card_brand.title()} •••• {self.card_last4}"
        return self.get_type_display()
