from django.db import models
from django.db.models import Q

from backoffice.append_only import AppendOnly

from .base import TimestampedModel


class StudentBalance(TimestampedModel):
    """Hours a student has prepaid through hour packages, in minutes: always the sum of its
    entries (payments/hours.py writes both in one transaction; --fix-inconsistencies checks
    it). Negative when a package was refunded after its hours were used and no other
    package covered them (payments/hours.py states the policy); finance follows those up."""

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
    """Ledger of every change to a StudentBalance; the balance is the sum of its entries.
    Written only by payments/hours.py, once per `reference` (an effect's unique name)."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Hour package purchased"
        USAGE = "usage", "Lesson taken"
        RESERVATION = "reservation", "Lesson reserved"
        RELEASE = "release", "Reservation released"
        EXPIRY = "expiry", "Hours expired"
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
        # Written once: a correction is a new entry (kind ADJUSTMENT).
        triggers = [AppendOnly()]
        indexes = [
            # The balance page's ledger (newest first) and its per-kind figures.
            models.Index(fields=["balance", "-created_at", "-id"], name="balance_entry_ledger_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.minutes:+d} min"


class HourPackage(TimestampedModel):
    """A lot of prepaid minutes with an expiry: one per credit (an hour-package payment, a
    manual credit, or the opening lot that carried a balance over from before lots existed).
    `remaining` = the sum of its draws: minutes not yet consumed, reserved, refunded or
    expired. Negative only when a refund took back minutes the student had used (a debt the
    next credit settles first)."""

    balance = models.ForeignKey(StudentBalance, related_name="packages", on_delete=models.PROTECT)
    payment = models.ForeignKey(
        "payments.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="hour_packages",
    )
    # The credit's BalanceEntry reference ("" for the opening lots, which have no entry).
    reference = models.CharField(max_length=255)
    minutes = models.IntegerField(help_text="Minutes credited.")
    remaining = models.IntegerField(help_text="Minutes left to draw (see the model's doc).")
    expires_at = models.DateTimeField()
    # When the expiry job took its remainder off the balance.
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="hour_package_reference_unique"),
        ]
        indexes = [
            # FIFO draws: a student's lots, oldest expiry first.
            models.Index(fields=["balance", "expires_at", "id"], name="hour_package_fifo_idx"),
            # The daily expiry job: lots past their expiry with minutes left.
            models.Index(
                fields=["expires_at"],
                condition=Q(remaining__gt=0),
                name="hour_package_expiring_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.minutes / 60:g} h package #{self.pk}"


class HourDraw(models.Model):
    """What one entry took from (negative) or gave to (positive) one package. An entry's
    draws add up to its minutes; a package's draws add up to its `remaining`. A release
    gives a reservation's minutes back to the packages it drew from."""

    entry = models.ForeignKey(BalanceEntry, related_name="draws", on_delete=models.PROTECT)
    package = models.ForeignKey(HourPackage, related_name="draws", on_delete=models.PROTECT)
    minutes = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["package"], name="hour_draw_package_idx")]

    def __str__(self) -> str:
        return f"{self.minutes:+d} min from package #{self.package_id}"


class Lesson(TimestampedModel):
    """A booking the booking system reported (payments/lessons.py imports them). Its status
    only moves forward: reserved -> consumed or canceled; consumed and canceled are final."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        CONSUMED = "consumed", "Consumed"
        CANCELED = "canceled", "Canceled"

    class Source(models.TextChoices):
        IMPORT = "import", "File import"
        API = "api", "API"
        DEMO = "demo", "Demo"

    booking_id = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(
        "payments.Customer", related_name="lessons", on_delete=models.PROTECT
    )
    minutes = models.PositiveIntegerField()
    lesson_date = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORT)

    class Meta:
        ordering = ["-lesson_date", "-id"]
        indexes = [
            models.Index(fields=["customer", "-lesson_date"], name="lesson_customer_date_idx")
        ]
        permissions = [("import_lessons", "Can import lessons from the booking system")]

    def __str__(self) -> str:
        return f"Lesson {self.booking_id}"
