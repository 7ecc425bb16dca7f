from django.conf import settings
from django.db import models

from .base import TimestampedModel


class BillingAction(TimestampedModel):
    """One staff change to a customer's billing at Stripe: cancel a subscription at the end
    of its period, resume it, cancel it now; make a saved payment method the default, detach
    one. Written by payments.services.billing_actions before the Stripe call, with the
    idempotency key `billing_action:<pk>` the call carries, and given its outcome after it.

    Its own row, not the audit trail: the audit row (written once, with the request) says who
    asked and why; this one follows the call. At most one is open (processing, or unknown
    after a timeout) per Stripe object: a database constraint."""

    class Kind(models.TextChoices):
        CANCEL_AT_PERIOD_END = "cancel_at_period_end", "Cancel at period end"
        RESUME = "resume", "Resume (renew again)"
        CANCEL_NOW = "cancel_now", "Cancel now"
        SET_DEFAULT = "set_default_payment_method", "Make default payment method"
        DETACH = "detach_payment_method", "Detach payment method"

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # No answer from Stripe (timeout, 5xx): it may have acted. Settled by reading the
        # object back (payments.services.billing_actions), never by a new key.
        UNKNOWN = "unknown", "Unknown (Stripe may have acted)"

    OPEN_STATUSES = (Status.PROCESSING, Status.UNKNOWN)
    SUBSCRIPTION_KINDS = (Kind.CANCEL_AT_PERIOD_END, Kind.RESUME, Kind.CANCEL_NOW)

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    customer = models.ForeignKey(
        "payments.Customer", related_name="billing_actions", on_delete=models.PROTECT
    )
    subscription = models.ForeignKey(
        "payments.Subscription",
        related_name="billing_actions",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    payment_method = models.ForeignKey(
        "payments.PaymentMethod",
        related_name="billing_actions",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    # The Stripe object changed (sub_..., pm_...): what the one-open-action rule is about.
    target_stripe_id = models.CharField(max_length=255)
    reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="billing_actions",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subscription", "-created_at"], name="billing_action_sub_idx"),
            models.Index(fields=["payment_method", "-created_at"], name="billing_action_pm_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["target_stripe_id"],
                condition=models.Q(status__in=["processing", "unknown"]),
                name="one_open_billing_action_per_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_stripe_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
