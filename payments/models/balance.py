from django.db import models

from .base import TimestampedModel


class StudentBalance(TimestampedModel):
    """Hours a student has prepaid through hour packages, in minutes. It can go negative when
    a package is refunded after some of its hours were used; finance follows those up."""

    customer = models.OneToOneField(
        "payments.Customer", related_name="balance", on_delete=models.PROTECT
    )
    minutes = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["minutes"], name="balance_minutes_idx")]

    def __str__(self) -> str:
        return f"{self.customer}: {self.minutes / 60:g} h"

    def audit_repr(self) -> str:
        # str() names the customer by e-mail; audit rows never do (Customer.audit_repr).
        return f"Hour balance of customer #{self.customer_id}"


class BalanceEntry(models.Model):
    """Ledger of every change to a StudentBalance; the balance is the sum of its entries."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Hour package purchased"
        USAGE = "usage", "Lesson taken"
        REFUND = "refund", "Hour package refunded"
        ADJUSTMENT = "adjustment", "Manual adjustment"

    balance = models.ForeignKey(StudentBalance, related_name="entries", on_delete=models.PROTECT)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    minutes = models.IntegerField(help_text="Signed change in minutes.")
    payment = models.ForeignKey(
        "payments.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="balance_entries",
    )
    reference = models.CharField(
        max_length=255,
        blank=True,
        help_text="Unique per effect, e.g. refund:<id>; keeps retries from applying twice.",
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Django's default plural would be "balance entrys".
        verbose_name_plural = "balance entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference"],
                condition=~models.Q(reference=""),
                name="balance_entry_reference_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.minutes:+d} min"
