"""What the marketplace owes its instructors and what it paid them.

EarningEntry is the instructor's ledger: append-only, one row per effect (a payment captured,
a refund, a dispute lost or won, a payout made or returned, a transfer reversed, a manual
adjustment), each with a unique `reference` so that a replayed webhook or a re-run job can
never apply an effect twice. An instructor's balance in a currency is the sum of its entries;
nothing else stores a balance. Amounts are signed minor units of `currency`: positive is owed
to the instructor, negative is owed back (or already paid out).

Payout is one payment to one instructor in one currency (a Stripe Connect transfer, or a
bank transfer staff make by hand); its `payout` entry is written in the transaction that
creates it, so the next run never pays the same money twice. Transfer and TransferReversal
mirror Stripe's objects like the other mirrors (sync and webhooks write them).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from backoffice.append_only import AppendOnly

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class PayoutRun(models.Model):
    """One pass of `--create-payouts` (or the weekly schedule, or the admin's button)."""

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payout_runs",
    )
    # "" for every currency; else the one `--currency` asked for.
    currency = models.CharField(max_length=3, blank=True)
    trigger = models.CharField(max_length=16, default="command")  # command, schedule, admin
    payouts_created = models.PositiveIntegerField(default=0)
    # {"usd": {"count": 12, "amount": 123400}, ...}: per currency, never added across them.
    totals = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Payout run #{self.pk}"


class Payout(TimestampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        # Claimed by a worker; the idempotency key is committed and the transfer may be in
        # flight (or its worker died: resumed with the same key, looked up first).
        PROCESSING = "processing", "Processing"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Method(models.TextChoices):
        CONNECT = "stripe_connect", "Stripe Connect transfer"
        BANK = "bank_transfer", "Bank transfer"

    class Source(models.TextChoices):
        RUN = "run", "Payout run"
        MANUAL = "manual", "Manual"

    OPEN_STATUSES = frozenset({Status.PENDING, Status.APPROVED, Status.PROCESSING})
    FINAL_STATUSES = frozenset({Status.PAID, Status.FAILED, Status.CANCELED})

    instructor = models.ForeignKey(
        "payments.Instructor", related_name="payouts", on_delete=models.PROTECT
    )
    run = models.ForeignKey(
        PayoutRun, related_name="payouts", null=True, blank=True, on_delete=models.PROTECT
    )
    amount = MinorUnitsField(help_text="Minor units of the currency; always positive.")
    currency = CurrencyField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.CONNECT)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.RUN)
    # The connected account when the payout was created (the instructor's may change later).
    destination_account = models.CharField(max_length=255, blank=True)
    # A bank-transfer payout's bank account, copied from the instructor when it was created:
    # the approver approves paying this account, and the bank file lists this one, so an edit
    # of the instructor's account after approval cannot redirect the money.
    bank_account = models.CharField(max_length=64, blank=True)
    note = models.TextField(blank=True, help_text="Why a manual payout was made.")

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts_requested",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts_approved",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_note = models.TextField(blank=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts_canceled",
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.TextField(blank=True)

    # `payout:<pk>`, committed before the first transfer call (DESIGN decision 3).
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_transfer_id = models.CharField("Transfer", max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Transfer calls sent to Stripe.")
    processing_started_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    # Bank transfers: the bank's reference, entered by whoever marked the payout paid.
    bank_reference = models.CharField(max_length=255, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts_marked_paid",
    )
    amount_reversed = MinorUnitsField(help_text="Minor units pulled back by transfer reversals.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_payout", "Can approve payouts"),
            ("approve_large_payout", "Can approve payouts above the senior threshold"),
            ("mark_payout_paid", "Can mark bank-transfer payouts paid"),
            ("reverse_payout", "Can reverse a paid payout's transfer"),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="payout_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="payout_status_created_idx"),
            models.Index(fields=["instructor", "-created_at"], name="payout_instructor_idx"),
            # The payouts list's search finds a whole tr_ id in any case (backoffice/
            # changelist.py: UPPER(column) = UPPER(term)).
            models.Index(Upper("stripe_transfer_id"), name="payout_transfer_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_reversed__gte=0) & Q(amount_reversed__lte=models.F("amount")),
                name="payout_reversed_within_amount",
            ),
            models.UniqueConstraint(
                fields=["stripe_transfer_id"],
                condition=~Q(stripe_transfer_id=""),
                name="payout_transfer_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Payout #{self.pk}"


class EarningAdjustment(TimestampedModel):
    """A manual credit or debit to an instructor's earnings: requested by one person, applied
    (as one EarningEntry) only when a second person approves it (four-eyes)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"

    instructor = models.ForeignKey(
        "payments.Instructor", related_name="earning_adjustments", on_delete=models.PROTECT
    )
    # Signed: positive credits the instructor, negative debits.
    amount = MinorUnitsField(help_text="Minor units; positive credits, negative debits.")
    currency = CurrencyField()
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="earning_adjustments_requested",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="earning_adjustments_decided",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_earningadjustment", "Can approve instructor earning adjustments")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="earning_adjustment_not_zero")
        ]

    def __str__(self) -> str:
        return f"Adjustment #{self.pk}"


class EarningEntry(models.Model):
    """One effect on what an instructor is owed. Written once, never updated or deleted."""

    class Kind(models.TextChoices):
        EARNING = "earning", "Earning"  # a payment captured: its net to the instructor
        REFUND = "refund", "Refund"  # reversal of (part of) an earning
        DISPUTE_LOST = "dispute_lost", "Dispute lost"
        DISPUTE_WON = "dispute_won", "Dispute won"  # reinstates what a lost dispute took
        PAYOUT = "payout", "Payout"  # money promised out (negative), at payout creation
        PAYOUT_RETURNED = "payout_returned", "Payout failed or canceled"  # positive
        PAYOUT_REVERSED = "payout_reversed", "Transfer reversed"  # positive
        ADJUSTMENT = "adjustment", "Manual adjustment"
        CORRECTION = "correction", "Correction"  # reconciliation with the payment's figures

    instructor = models.ForeignKey(
        "payments.Instructor", related_name="earning_entries", on_delete=models.PROTECT
    )
    currency = CurrencyField()
    amount = models.BigIntegerField(help_text="Signed minor units: + owed to the instructor.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Unique per effect, e.g. `payment:pi_123:earning`, `refund:re_123`, `payout:42`.
    reference = models.CharField(max_length=255, unique=True)
    payment = models.ForeignKey(
        "payments.Payment",
        related_name="earning_entries",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
    )
    payout = models.ForeignKey(
        Payout, related_name="entries", null=True, blank=True, on_delete=models.PROTECT
    )
    adjustment = models.OneToOneField(
        EarningAdjustment, related_name="entry", null=True, blank=True, on_delete=models.PROTECT
    )
    # When the effect happened (the payment's success, the refund's creation, ...).
    occurred_at = models.DateTimeField()
    # From when the amount counts as available for payout: an earning (and every later entry
    # of the same payment) after PAYOUT_HOLD_DAYS; everything else at once.
    available_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "earning entries"
        indexes = [
            # The ledger over all instructors by date: the API's list (newest first,
            # cursor-paginated) and the accounting export (a range of days, oldest first:
            # reports/ledger_export.py) read it in either direction.
            models.Index(fields=["-occurred_at", "-id"], name="earning_occurred_idx"),
            models.Index(
                fields=["instructor", "currency", "available_at"],
                name="earning_instr_available_idx",
            ),
            models.Index(
                fields=["instructor", "currency", "occurred_at"], name="earning_instr_occurred_idx"
            ),
            models.Index(fields=["payment"], name="earning_payment_idx"),
        ]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="earning_not_zero")]
        # Written once: a mistake is corrected by a new entry (kind CORRECTION or ADJUSTMENT).
        triggers = [AppendOnly()]

    def __str__(self) -> str:
        return self.reference


class Transfer(TimestampedModel):
    """A Stripe Connect transfer to a connected account, as mirrored from Stripe."""

    stripe_id = models.CharField("Transfer id", max_length=255, unique=True)
    payout = models.ForeignKey(
        Payout, related_name="transfers", null=True, blank=True, on_delete=models.SET_NULL
    )
    instructor = models.ForeignKey(
        "payments.Instructor",
        related_name="transfers",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
    )
    destination = models.CharField(max_length=255)
    amount = MinorUnitsField()
    currency = CurrencyField()
    amount_reversed = MinorUnitsField()
    reversed = models.BooleanField(default=False)
    transfer_group = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When Stripe created the transfer.")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["-created", "-id"], name="transfer_created_idx"),
            # The Transfers list's search: a whole Stripe id in any case (backoffice.changelist).
            models.Index(Upper("stripe_id"), name="transfer_stripe_id_upper_idx"),
            models.Index(Upper("destination"), name="transfer_destination_upper_idx"),
        ]

    def __str__(self) -> str:
        return self.stripe_id


class TransferReversal(TimestampedModel):
    """A Stripe transfer reversal (money pulled back from a connected account)."""

    stripe_id = models.CharField("Reversal id", max_length=255, unique=True)
    transfer = models.ForeignKey(Transfer, related_name="reversals", on_delete=models.PROTECT)
    amount = MinorUnitsField()
    currency = CurrencyField()
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.stripe_id
