from django.db import models
from django.db.models.functions import Upper

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class Refund(TimestampedModel):
    """A Stripe refund of (part of) a payment, as mirrored from Stripe."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REQUIRES_ACTION = "requires_action", "Requires action"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    stripe_id = models.CharField("Stripe refund id", max_length=255, unique=True)
    payment = models.ForeignKey(
        "payments.Payment", related_name="refunds", on_delete=models.PROTECT
    )
    amount = MinorUnitsField()
    currency = CurrencyField()
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=64, blank=True)
    failure_reason = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["payment", "-created"], name="refund_payment_created_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="refund_stripe_id_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive")
        ]

    def __str__(self) -> str:
        return self.stripe_id
