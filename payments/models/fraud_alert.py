from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from .base import TimestampedModel


class FraudAlert(TimestampedModel):
    """A payment someone (Stripe Radar's early fraud warning, or staff) flagged as possible
    fraud, and the review of it. Review decisions go through payments.services.fraud_alert."""

    class Status(models.TextChoices):
        # Stored values predate the review workflow and are kept, so no row moves; the
        # labels say what a resolution means. Forward only: open -> investigating ->
        # confirmed / dismissed, or open -> confirmed / dismissed
        # (payments.services.fraud_alert.ALLOWED_TRANSITIONS).
        OPEN = "open", "Open"
        INVESTIGATING = "investigating", "Investigating"
        CONFIRMED = "confirmed", "Resolved: confirmed fraud"
        DISMISSED = "dismissed", "Resolved: false positive"

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
    # Who resolved it (confirmed / dismissed), when, and why.
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

    # --- Review workflow (h/fraudreview): who owns the review and since when. ----------------
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fraud_alerts_assigned",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    investigating_since = models.DateTimeField(null=True, blank=True)
    # --- end of the review workflow block ----------------------------------------------------

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("review_fraudalert", "Can assign, investigate and resolve fraud alerts")]
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

    UNRESOLVED_STATUSES = frozenset({Status.OPEN, Status.INVESTIGATING})
    RESOLVED_STATUSES = frozenset({Status.CONFIRMED, Status.DISMISSED})

    @property
    def is_resolved(self) -> bool:
        return self.status in self.RESOLVED_STATUSES
