from django.db import models

from .base import TimestampedModel


class DisputeDeadlineAlert(TimestampedModel):
    """The record that the deadline alert of one threshold (7, 3, 1 days before Stripe's
    `evidence_due_by`) was sent for one dispute. The unique constraint makes "sent once"
    hold under re-runs and concurrent runs: a run sends only for rows it inserted
    (payments/services/dispute_alerts.py)."""

    dispute = models.ForeignKey(
        "payments.Dispute", related_name="deadline_alerts", on_delete=models.CASCADE
    )
    # The threshold crossed, in whole days before the deadline.
    threshold_days = models.PositiveSmallIntegerField()
    # The deadline the alert was about (Stripe may move it; the row keeps what was said).
    evidence_due_by = models.DateTimeField()
    sent_at = models.DateTimeField()
    recipients = models.TextField(blank=True, help_text="Comma-separated e-mail addresses.")

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dispute", "threshold_days"], name="dispute_alert_once_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dispute_id}: {self.threshold_days} days"
