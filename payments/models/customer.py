from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from .base import TimestampedModel


class Customer(TimestampedModel):
    """A student (or any buyer) as Stripe knows them."""

    # An erased customer's name (payments/customer_privacy.py); the Stripe id stays beside it.
    ERASED_NAME = "Erased customer"

    stripe_id = models.CharField("Stripe customer id", max_length=255, unique=True)
    # Stored lower-case (one spelling per address). Search reads it through the pg_trgm index
    # on UPPER(email) (migration 0018); customer_email_prefix_idx below served the old
    # prefix-only search and is kept for anchored LIKE 'prefix%' lookups.
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=255, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When the customer was created in Stripe.")
    # Stripe's customer balance (mirrored by the sync and customer.updated): minor units of
    # `balance_currency`, Stripe's sign (negative = credit the customer holds for their next
    # invoices, positive = owed). None until Stripe has told us; "" currency until one is set.
    stripe_balance = models.BigIntegerField(null=True, blank=True)
    stripe_balance_currency = models.CharField(max_length=3, blank=True)

    # Ours, not Stripe's (the sync never writes them): a blocked customer's payments cannot be
    # retried and refunds to them need a senior approver. Written only through
    # payments.services.customer_block, which audits every block and unblock.
    blocked_at = models.DateTimeField(null=True, blank=True)
    blocked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customers_blocked",
    )
    block_reason = models.TextField(blank=True)
    # GDPR erasure (payments/services/customer_privacy.py): when the personal fields (here and
    # in related rows) were pseudonymised. From then on the sync and webhooks never write them
    # again; money rows and the audit trail stay, and the Stripe id keeps the link.
    erased_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [
            ("block_customer", "Can block and unblock customers"),
            ("export_customer_data", "Can export a customer's personal data (GDPR)"),
            ("erase_customer", "Can erase a customer's personal data (GDPR)"),
        ]
        indexes = [
            models.Index(fields=["-created", "-id"], name="customer_created_idx"),
            models.Index(
                fields=["email"],
                name="customer_email_prefix_idx",
                opclasses=["varchar_pattern_ops"],
            ),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="customer_stripe_id_upper_idx"),
        ]

    def __str__(self) -> str:
        if self.erased_at is not None:
            return f"{self.ERASED_NAME} {self.stripe_id}"
        return self.email or self.name or self.stripe_id

    def audit_repr(self) -> str:
        """How audit rows and the admin's log name the customer: never the e-mail or name
        (the append-only audit trail outlives an erasure; backoffice/audit.py)."""
        return f"Customer #{self.pk} ({self.stripe_id})"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def is_blocked(self) -> bool:
        return self.blocked_at is not None

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)
