from django.db import models
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class Subscription(TimestampedModel):
    """A customer's Stripe subscription, mirrored (payments.sync.upsert_subscriptions, from
    the sync and the `customer.subscription.*` / `invoice.*` webhooks). Changed at Stripe
    only through payments.services.subscriptions (cancel at period end, resume, cancel now),
    which mirrors Stripe's answer back through the same upsert."""

    class Status(models.TextChoices):
        # Every status Stripe documents for a subscription (API reference,
        # subscription.status). The column stores any other one raw; the pages show it.
        INCOMPLETE = "incomplete", "Incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        UNPAID = "unpaid", "Unpaid"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    # Stripe never brings a subscription back from these: the mirror never replaces one of
    # them by another status (an older event or sync page), and no action is offered.
    FINAL_STATUSES = frozenset({Status.CANCELED, Status.INCOMPLETE_EXPIRED})

    stripe_id = models.CharField("Stripe subscription id", max_length=255, unique=True)
    # Null only while the customer is unknown to us (the upsert mirrors it first).
    customer = models.ForeignKey(
        "payments.Customer",
        related_name="subscriptions",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
    )
    status = models.CharField(max_length=32, choices=Status.choices)
    # The (first) price billed, its product and nickname; what one interval costs.
    price_id = models.CharField("Stripe price id", max_length=255, blank=True)
    product_id = models.CharField("Stripe product id", max_length=255, blank=True)
    plan_name = models.CharField(max_length=255, blank=True)
    items_count = models.PositiveSmallIntegerField(default=1)
    quantity = models.PositiveIntegerField(default=1)
    amount = MinorUnitsField(help_text="What one billing interval costs, in minor units.")
    currency = CurrencyField(blank=True)
    interval = models.CharField(max_length=16, blank=True)
    interval_count = models.PositiveSmallIntegerField(default=1)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancel_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Stripe's cancellation_details: why it was canceled (cancellation_requested,
    # payment_failed, payment_disputed), the comment we sent with it, the customer's feedback.
    cancellation_reason = models.CharField(max_length=64, blank=True)
    cancellation_comment = models.TextField(blank=True)
    cancellation_feedback = models.CharField(max_length=64, blank=True)
    default_payment_method_id = models.CharField(max_length=255, blank=True)
    latest_invoice_id = models.CharField(max_length=255, blank=True)
    latest_invoice_status = models.CharField(max_length=32, blank=True)
    latest_invoice_amount_due = models.BigIntegerField(null=True, blank=True)
    latest_invoice_amount_paid = models.BigIntegerField(null=True, blank=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When the subscription was created in Stripe.")
    metadata = models.JSONField(default=dict, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("manage_subscription", "Can cancel and resume subscriptions")]
        indexes = [
            models.Index(fields=["-created", "-id"], name="sub_created_idx"),
            # The status filter and the dashboard's past-due count.
            models.Index(fields=["status", "-created"], name="sub_status_created_idx"),
            # A customer's subscriptions on their page.
            models.Index(fields=["customer", "-created"], name="sub_customer_created_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="sub_stripe_id_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="subscription_amount_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.stripe_id

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES
