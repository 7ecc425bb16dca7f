"""Refund requests: what staff (or a customer, a dispute, the system) asked to give back, and
how far it got. The money itself moves only through refunds/services.py; payments.Refund is
the mirror of what Stripe actually refunded."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from payments.models.base import CurrencyField, MinorUnitsField, TimestampedModel


class RefundRequest(TimestampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Reason(models.TextChoices):
        # Stripe's own refund reasons: sent to Stripe as `reason`.
        REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by customer"
        DUPLICATE = "duplicate", "Duplicate"
        FRAUDULENT = "fraudulent", "Fraudulent"

    class InternalReason(models.TextChoices):
        # Our own reason codes, for reporting; Stripe never sees them.
        NONE = "", "—"
        COURSE_CANCELED = "course_canceled", "Course or event canceled"
        INSTRUCTOR_NO_SHOW = "instructor_no_show", "Instructor did not show"
        QUALITY = "quality", "Quality complaint"
        TECHNICAL = "technical", "Technical problem"
        GOODWILL = "goodwill", "Goodwill gesture"
        DUPLICATE_PURCHASE = "duplicate_purchase", "Bought twice"
        OTHER = "other", "Other"

    class Source(models.TextChoices):
        STAFF = "staff", "Staff"
        CUSTOMER = "customer", "Customer"
        DISPUTE = "dispute", "Dispute"
        SYSTEM = "system", "System"
        # Proposed when a fraud alert from a Stripe early fraud warning was confirmed
        # (FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING); pending like any other request.
        FRAUD = "fraud", "Fraud review"

    # Statuses whose amount is already promised to the customer but not yet refunded.
    IN_FLIGHT_STATUSES = frozenset({Status.APPROVED, Status.PROCESSING})
    FINAL_STATUSES = frozenset({Status.REJECTED, Status.PROCESSED, Status.FAILED, Status.CANCELED})

    payment = models.ForeignKey(
        "payments.Payment", related_name="refund_requests", on_delete=models.PROTECT
    )
    amount = MinorUnitsField(help_text="Minor units of the payment's currency.")
    currency = CurrencyField()
    reason = models.CharField(
        max_length=32, choices=Reason.choices, default=Reason.REQUESTED_BY_CUSTOMER
    )
    internal_reason = models.CharField(
        "Internal reason", max_length=32, choices=InternalReason.choices, blank=True
    )
    customer_note = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STAFF)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refund_requests_made",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    admin_notes = models.TextField(blank=True)
    rejection_reason = models.TextField(blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refund_requests_approved",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refund_requests_rejected",
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    # Set when a worker claims the request; a claim older than REFUND_PROCESSING_LEASE_SECONDS
    # is treated as a crashed worker and may be resumed (with the same idempotency key).
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    stripe_refund_id = models.CharField("Stripe refund id", max_length=255, blank=True)
    # Stored (and committed) before the first Stripe call; every retry reuses it.
    idempotency_key = models.CharField(max_length=255, blank=True)
    failure_message = models.TextField(blank=True)
    notify_customer = models.BooleanField(default=True)
    # The confirmed fraud alert a "fraud" request was proposed for: at most one per alert.
    fraud_alert = models.ForeignKey(
        "payments.FraudAlert",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refund_requests",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [
            ("approve_refundrequest", "Can approve or reject refund requests"),
            (
                "approve_large_refundrequest",
                "Can approve refund requests above the senior-approval amount",
            ),
        ]
        indexes = [
            # The queue: the status filter (pending) followed by age; the priority tiers
            # URGENT/HIGH are ranges of created_at inside it.
            models.Index(fields=["status", "created_at", "id"], name="refundreq_status_age_idx"),
            models.Index(fields=["created_at", "id"], name="refundreq_age_idx"),
            models.Index(fields=["payment", "status"], name="refundreq_payment_status_idx"),
            models.Index(fields=["currency", "amount"], name="refundreq_currency_amount_idx"),
            models.Index(fields=["requested_by", "status"], name="refundreq_requester_idx"),
            models.Index(fields=["reason", "status"], name="refundreq_reason_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_refund_id"), name="refundreq_refund_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refundreq_amount_positive"),
            models.UniqueConstraint(
                fields=["stripe_refund_id"],
                condition=~Q(stripe_refund_id=""),
                name="refundreq_stripe_refund_unique",
            ),
            models.UniqueConstraint(
                fields=["fraud_alert"],
                condition=Q(fraud_alert__isnull=False),
                name="refundreq_one_per_fraud_alert",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="refundreq_idempotency_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund request #{self.pk}"
