"""Manual adjustments to what a customer (a student) has with us: a credit or a debit of money
(a Stripe customer balance transaction, spent by Stripe on the customer's next invoices) or of
prepaid hours (an entry in the hours ledger, payments.hours).

Requested by one person, applied only when a second person approves (four-eyes), exactly once:
money through Stripe with the idempotency key `customer_adjustment:<pk>` committed before the
call; hours through the hours ledger with the same string as its unique reference. The rules
are payments/customer_adjustment_rules.py, the writes payments/services/customer_adjustments.py.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from .base import CurrencyField, MinorUnitsField, TimestampedModel


class CustomerAdjustment(TimestampedModel):
    class Direction(models.TextChoices):
        CREDIT = "credit", "Credit"  # in the customer's favour
        DEBIT = "debit", "Debit"  # the customer owes it

    class Unit(models.TextChoices):
        MONEY = "money", "Money"
        HOURS = "hours", "Hours"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        # Money only: approved, its idempotency key committed, waiting for the Stripe call.
        APPROVED = "approved", "Approved"
        # Money only: claimed by a worker; the Stripe call is in flight, or its outcome was not
        # known (claim released, looked up before any resend).
        APPLYING = "applying", "Applying"
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"
        # Money only: Stripe answered and said no; nothing changed in Stripe.
        FAILED = "failed", "Failed"

    # Statuses that still wait for someone (or something) to act.
    OPEN_STATUSES = (Status.PENDING, Status.APPROVED, Status.APPLYING)

    customer = models.ForeignKey(
        "payments.Customer", related_name="adjustments", on_delete=models.PROTECT
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    # Money: a positive amount in minor units of `currency` (the direction gives the sign).
    # Hours: 0 and "".
    amount = MinorUnitsField(help_text="Minor units, positive; the direction gives the sign.")
    currency = CurrencyField(blank=True)
    # Hours: a positive number of minutes (the direction gives the sign). Money: 0.
    minutes = models.PositiveIntegerField(default=0)
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customer_adjustments_requested",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customer_adjustments_decided",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    # Applying. `customer_adjustment:<pk>`: the Stripe idempotency key (money, committed at
    # approval, before any call) and the hours ledger entry's reference (hours).
    idempotency_key = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    applying_started_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    stripe_balance_transaction_id = models.CharField(max_length=255, blank=True)
    # The customer's Stripe balance after the transaction (minor units of `currency`; Stripe's
    # sign: negative is credit the customer holds).
    stripe_ending_balance = models.BigIntegerField(null=True, blank=True)
    balance_entry = models.OneToOneField(
        "payments.BalanceEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customer_adjustment",
    )
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_customeradjustment", "Can approve customer adjustments"),
            (
                "approve_large_customeradjustment",
                "Can approve customer adjustments above the senior limit",
            ),
        ]
        indexes = [
            # The queue's tabs and its default order.
            models.Index(fields=["status", "-created_at"], name="custadj_status_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="custadj_created_idx"),
        ]
        constraints = [
            # One shape per unit: money has a positive amount and a currency and no minutes;
            # hours have positive minutes and neither.
            models.CheckConstraint(
                condition=(
                    Q(unit="money", amount__gt=0, minutes=0) & ~Q(currency="")
                    | Q(unit="hours", amount=0, currency="", minutes__gt=0)
                ),
                name="customer_adjustment_unit_shape",
            ),
            models.CheckConstraint(
                condition=Q(direction__in=["credit", "debit"]),
                name="customer_adjustment_direction_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Customer adjustment #{self.pk}"

    @property
    def is_money(self) -> bool:
        return self.unit == self.Unit.MONEY

    @property
    def sign(self) -> int:
        """+1 for a credit (in the customer's favour), -1 for a debit."""
        return 1 if self.direction == self.Direction.CREDIT else -1

    @property
    def signed_amount(self) -> int:
        """Money in the customer's favour, minor units (positive credit, negative debit)."""
        return self.sign * self.amount

    @property
    def signed_minutes(self) -> int:
        """Minutes in the customer's favour (positive credit, negative debit)."""
        return self.sign * self.minutes

    @property
    def stripe_amount(self) -> int:
        """The amount as Stripe's customer balance transaction takes it: Stripe's balance is
        what the customer owes, so a credit is NEGATIVE and a debit positive."""
        return -self.signed_amount
