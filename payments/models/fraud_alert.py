from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from .base import TimestampedModel


class FraudAlert(TimestampedModel):
    """A payment someone (Stripe Radar's early fraud warning, or staff) flagged as possible
    fraud, and the review of it. Review decisions go through payments.services.fraud_alert."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DISMISSED = "dismissed", "Dismissed (not fraud)"
        CONFIRMED = "confirmed", "Confirmed fraud"

    class Source(models.TextChoices):
        EARLY_FRAUD_WARNING = "early_fraud_warning", "Stripe early fraud warning"
        STAFF = "staff", "Flagged by staff"

    payment = models.ForeignKey(
        "payments.Payment", related_name="fraud_alerts", on_delete=models.PROTECT
    )
    source = models.CharField(max_length=32, choices=Source.choices)
    # Stripe's early fraud warning id (issfr_...); empty for staff flags.
    stripe_id = models.CharField(max_length=255, blank=True)
    fraud_type = models.CharField(max_length=64, blank=True, help_text="Stripe's fraud_type.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fraud_reviews",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    created = models.DateTimeField(help_text="When the warning was raised.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("review_fraudalert", "Can dismiss or confirm fraud alerts")]
        indexes = [models.Index(fields=["status", "-created"], name="fraud_status_created_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_id"],
                condition=~models.Q(stripe_id=""),
                name="fraud_alert_stripe_id_unique",
            )
        ]

    def __str__(self) -> str:
        return f"Fraud alert #{self.pk} on {self.payment_id}"
