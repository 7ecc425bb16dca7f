from django.conf import settings
from django.db import models

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class PaymentRetry(TimestampedModel):
    """One staff request to charge a failed payment again, and where it stands.

    The retry's state lives here (payments.services.payment_retry moves it); each staff action
    on it also leaves one AdminAction, which is never edited. At most one retry per payment is
    open (processing or unknown): the service checks it under the payment's row lock, and a
    partial unique index makes the database refuse a second one whatever the code does.
    """

    class Status(models.TextChoices):
        # The key is committed and the confirm call is in flight, or its worker died.
        PROCESSING = "processing", "Sent to Stripe"
        # Stripe timed out or answered 5xx: it MAY have charged. Resumed with the same key.
        UNKNOWN = "unknown", "Outcome unknown"
        SUCCEEDED = "succeeded", "Succeeded"
        # Stripe answered and the card was declined: nothing charged, the key is used up.
        DECLINED = "declined", "Declined"
        # Stripe refused the request before any charge (invalid state, auth, ...).
        FAILED = "failed", "Refused by Stripe"

    OPEN_STATUSES = (Status.PROCESSING, Status.UNKNOWN)

    payment = models.ForeignKey(
        "payments.Payment", related_name="retries", on_delete=models.PROTECT
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    # `payment_retry:<pk>`, derived from this row and committed before the first Stripe call
    # (DESIGN decision 3); null only inside the transaction that creates the row. Retries
    # from before this model carry their old `payment:<id>:retry:<n>` key.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    amount = MinorUnitsField(help_text="Minor units, as the payment when the retry was asked.")
    currency = CurrencyField()
    # The intent and the method this retry confirms. A resumed attempt sends exactly these
    # again: Stripe refuses a reused idempotency key with different parameters.
    stripe_payment_intent_id = models.CharField(max_length=255)
    stripe_payment_method_id = models.CharField(max_length=255)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payment_retries",
    )
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Confirm calls sent to Stripe.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stripe_status = models.CharField(
        max_length=64, blank=True, help_text="The payment intent's status after the retry."
    )
    decline_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        # Django's default plural would be "payment retrys".
        verbose_name_plural = "payment retries"
        ordering = ["-created_at", "-id"]
        # The admin list's default ordering.
        indexes = [models.Index(fields=["-created_at", "-id"], name="payment_retry_created_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["payment"],
                condition=models.Q(status__in=["processing", "unknown"]),
                name="payment_retry_one_open_per_payment",
            )
        ]

    def __str__(self) -> str:
        return f"Retry #{self.pk} of payment {self.payment_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
