from django.db import models
from django.db.models.functions import Upper

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class Dispute(TimestampedModel):
    """A chargeback opened by the cardholder's bank against a payment (or an inquiry: the
    `warning_*` statuses), mirrored from Stripe."""

    class Status(models.TextChoices):
        # Every status Stripe documents for a dispute (API reference, dispute.status), plus
        # charge_refunded, which older API versions send for a dispute closed by a refund.
        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Warning: needs response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Warning: under review"
        WARNING_CLOSED = "warning_closed", "Warning: closed"
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"
        CHARGE_REFUNDED = "charge_refunded", "Charge refunded"
        PREVENTED = "prevented", "Prevented"

    class Reason(models.TextChoices):
        # Stripe's dispute reasons: their labels (the column stores any reason raw).
        BANK_CANNOT_PROCESS = "bank_cannot_process", "Bank cannot process"
        CHECK_RETURNED = "check_returned", "Check returned"
        CREDIT_NOT_PROCESSED = (
            "credit_not_processed",
            "Credit not processed (customer says a refund was promised)",
        )
        CUSTOMER_INITIATED = "customer_initiated", "Customer initiated"
        DEBIT_NOT_AUTHORIZED = "debit_not_authorized", "Debit not authorised"
        DUPLICATE = "duplicate", "Duplicate charge"
        FRAUDULENT = "fraudulent", "Fraudulent (customer says they did not authorise it)"
        GENERAL = "general", "General"
        INCORRECT_ACCOUNT_DETAILS = "incorrect_account_details", "Incorrect account details"
        INSUFFICIENT_FUNDS = "insufficient_funds", "Insufficient funds"
        NONCOMPLIANT = "noncompliant", "Non-compliant"
        PRODUCT_NOT_RECEIVED = "product_not_received", "Product not received"
        PRODUCT_UNACCEPTABLE = "product_unacceptable", "Product unacceptable"
        SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription canceled"
        UNRECOGNIZED = "unrecognized", "Unrecognised charge"

    # Statuses after which Stripe decides nothing more in the normal course: the mirror
    # never replaces one of these by a non-final status (an older event or sync page).
    FINAL_STATUSES = frozenset(
        {
            Status.WON,
            Status.LOST,
            Status.WARNING_CLOSED,
            Status.CHARGE_REFUNDED,
            Status.PREVENTED,
        }
    )
    # The order a dispute moves in; payments.sync keeps the latest it has seen (see
    # upsert_disputes). Non-final first (an inquiry, then a chargeback, answered then
    # reviewed), then the finals by precedence: between two finals the later one here wins.
    # Stripe moves `lost` to `won` when the cardholder withdraws a dispute after it closed
    # (funds reinstated); it never moves `won` to `lost` (the issuer's decision is final and
    # Stripe does not support arbitration), so a `lost` seen after `won` is a stale snapshot.
    LIFECYCLE = (
        Status.WARNING_NEEDS_RESPONSE,
        Status.WARNING_UNDER_REVIEW,
        Status.NEEDS_RESPONSE,
        Status.UNDER_REVIEW,
        Status.WARNING_CLOSED,
        Status.CHARGE_REFUNDED,
        Status.PREVENTED,
        Status.LOST,
        Status.WON,
    )

    stripe_id = models.CharField("Stripe dispute id", max_length=255, unique=True)
    payment = models.ForeignKey(
        "payments.Payment", related_name="disputes", on_delete=models.PROTECT
    )
    amount = MinorUnitsField()
    currency = CurrencyField()
    # Stripe's dispute fee (its balance transactions' fees), minor units of `currency`.
    fee = MinorUnitsField()
    # Any string Stripe sends is stored: the choices give known statuses their labels, they
    # are not a constraint (no CHECK in the database; the sync's bulk upsert runs no model
    # validation). An unknown status is shown raw with a badge and counts as open in the
    # ledger (payments/ledger.py).
    status = models.CharField(max_length=32, choices=Status.choices)
    # Raw, without choices, so that a reason Stripe adds is shown as sent (reason_label).
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
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="dispute_stripe_id_upper_idx"),
        ]

    def __str__(self) -> str:
        return self.stripe_id

    @property
    def status_known(self) -> bool:
        return self.status in self.Status.values

    @property
    def reason_label(self) -> str:
        return dispute_reason_label(self.reason)


def dispute_reason_label(reason: str) -> str:
    """A Stripe reason in words; one we have no label for (Stripe adds reasons) from its own
    words, so it is shown, never dropped."""
    if not reason:
        return ""
    if reason in Dispute.Reason.values:
        return Dispute.Reason(reason).label
    return reason.replace("_", " ").capitalize()
