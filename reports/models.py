"""Daily rollups (one row per day per currency) and numbered receipts / credit notes.

Money columns are integer minor units next to a lower-case currency, like everywhere else.
Rates are percentages with two fixed decimal places (95.25 means 95.25 %), NULL where the
denominator is zero, so "no data" never reads as "0 %".
"""

from django.db import models

from payments.models.base import CurrencyField, MinorUnitsField

RATE_DIGITS = {"max_digits": 5, "decimal_places": 2}


class DailyRollup(models.Model):
    """Every figure finance reads per day and currency, computed by reports.rollups.

    Payments are bucketed by the day they were created (in settings.TIME_ZONE); refunds by the
    day Stripe created them; disputes by the day they were opened; refund processing time by
    the day the refund request was processed.
    """

    day = models.DateField()
    currency = CurrencyField()

    attempted_count = models.PositiveIntegerField("attempted", default=0)
    succeeded_count = models.PositiveIntegerField(
        "succeeded",
        default=0,
        help_text="Captured: succeeded, partially refunded, refunded or disputed.",
    )
    failed_count = models.PositiveIntegerField("failed", default=0)
    canceled_count = models.PositiveIntegerField("canceled", default=0)
    refunded_count = models.PositiveIntegerField(
        "refunds", default=0, help_text="Succeeded refunds."
    )
    refunded_amount = MinorUnitsField()
    gross_amount = MinorUnitsField(help_text="Sum of captured amounts, minor units.")
    stripe_fee_amount = MinorUnitsField()
    platform_fee_amount = MinorUnitsField()
    net_amount = MinorUnitsField(help_text="Gross minus Stripe and platform fees.")
    average_amount = models.BigIntegerField(
        null=True, blank=True, help_text="Gross / succeeded, minor units, rounded half up."
    )
    success_rate = models.DecimalField(
        **RATE_DIGITS, null=True, blank=True, help_text="Succeeded / (succeeded + failed), %."
    )
    conversion_rate = models.DecimalField(
        **RATE_DIGITS, null=True, blank=True, help_text="Succeeded / attempted, %."
    )
    # {"card": {"attempted": 10, "succeeded": 9, "amount": 45000}, ...}
    payment_methods = models.JSONField(default=dict, blank=True)
    # {"insufficient_funds": 3, "expired_card": 1, ...}: decline code, else failure code.
    failure_reasons = models.JSONField(default=dict, blank=True)
    disputes_opened = models.PositiveIntegerField("disputes", default=0)
    refund_requests_processed = models.PositiveIntegerField(default=0)
    median_refund_hours = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    # Changes only when a figure changes, so a re-run over the same data writes nothing.
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "currency"]
        verbose_name = "daily analytics"
        verbose_name_plural = "analytics"
        constraints = [
            models.UniqueConstraint(fields=["day", "currency"], name="rollup_day_currency_unique")
        ]
        indexes = [models.Index(fields=["currency", "-day"], name="rollup_currency_day_idx")]
        permissions = [
            ("export_payments", "Can export payments and refunds (CSV, JSON, XLSX)"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.currency.upper()}"


class DocumentKind(models.TextChoices):
    RECEIPT = "receipt", "Receipt"
    CREDIT_NOTE = "credit_note", "Credit note"


DOCUMENT_PREFIX = {DocumentKind.RECEIPT: "REC", DocumentKind.CREDIT_NOTE: "CN"}


class DocumentSequence(models.Model):
    """The last number handed out per kind and year. Incremented under SELECT ... FOR UPDATE
    in the same transaction that inserts the document, so numbers are gap-free: a rollback
    returns the number too."""

    kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "year"], name="document_sequence_unique")
        ]

    def __str__(self) -> str:
        return f"{DOCUMENT_PREFIX[self.kind]}-{self.year}: {self.last_number}"


class Receipt(models.Model):
    """A receipt for a captured payment, or a credit note for a processed refund."""

    kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    number = models.CharField(max_length=32, unique=True, help_text="REC-YYYY-NNNNNN")
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    payment = models.ForeignKey(
        "payments.Payment", related_name="receipts", on_delete=models.PROTECT
    )
    amount = MinorUnitsField(help_text="Minor units: paid (receipt) or refunded (credit note).")
    currency = CurrencyField()
    # What the document is for, unique: "payment:<pk>" or "refund:<stripe refund id>". Makes
    # issuing idempotent however often the signal or the repair job fires.
    reference = models.CharField(max_length=255, unique=True)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    refund_request_id = models.BigIntegerField(null=True, blank=True)
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "year", "sequence"], name="receipt_kind_year_sequence_unique"
            ),
        ]
        indexes = [models.Index(fields=["payment", "kind"], name="receipt_payment_kind_idx")]

    def __str__(self) -> str:
        return self.number
