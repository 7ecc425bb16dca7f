from django.db import models

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class Dispute(TimestampedModel):
    """A chargeback opened by the cardholder's bank against a payment."""

    class Status(models.TextChoices):
        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Warning: needs response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Warning: under review"
        WARNING_CLOSED = "warning_closed", "Warning: closed"
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    stripe_id = models.CharField("Stripe dispute id", max_length=255, unique=True)
    payment = models.ForeignKey(
        "payments.Payment", related_name="disputes", on_delete=models.PROTECT
    )
    amount = MinorUnitsField()
    currency = CurrencyField()
    # Stripe's dispute fee (its balance transactions' fees), minor units of `currency`.
    fee = MinorUnitsField()
    status = models.CharField(max_length=32, choices=Status.choices)
    reason = models.CharField(max_length=64, blank=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # Stripe's `evidence` object as staged or submitted (file fields hold file ids), and its
    # `evidence_details`: mirrored by the sync like the rest of the row, never edited here.
    evidence = models.JSONField(default=dict, blank=True)
    evidence_submission_count = models.PositiveIntegerField(default=0)
    has_evidence = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [
            ("respond_dispute", "Can respond to disputes (save or submit evidence, accept)")
        ]
        indexes = [
            models.Index(fields=["status", "evidence_due_by"], name="dispute_status_due_idx"),
            models.Index(fields=["payment", "-created"], name="dispute_payment_created_idx"),
        ]

    def __str__(self) -> str:
        return self.stripe_id
