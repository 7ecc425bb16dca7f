from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from .base import TimestampedModel

# --- Rule alerts (h/fraudrules): what payments/fraud_rules.py needs on FraudAlert ----------
# "Unresolved" is exactly these statuses (the review workflow owns them); the partial unique
# constraint below keeps at most one unresolved rule alert per (rule, cause_key).
UNRESOLVED_STATUSES = ("open", "investigating")


class FraudRule(models.TextChoices):
    """Our own rules (payments/fraud_rules.py); the value is FraudAlert.rule."""

    FAILED_ATTEMPTS = "failed_attempts", "Multiple failed attempts"
    RAPID_ATTEMPTS = "rapid_attempts", "Rapid attempts"
    UNUSUAL_AMOUNT = "unusual_amount", "Unusual amount"
    NEW_ACCOUNT_HIGH_AMOUNT = "new_account_high_amount", "New account, high amount"
    MANY_PAYMENT_METHODS = "many_payment_methods", "Many payment methods"
    SHARED_CARD = "shared_card", "Card shared across customers"
    SHARED_IP = "shared_ip", "IP shared across customers"


class FraudSeverity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


# --- end of the rule alerts' definitions ----------------------------------------------------


class FraudAlert(TimestampedModel):
    """A payment someone (Stripe Radar's early fraud warning, staff, or one of our own rules)
    flagged as possible fraud, and the review of it. Review decisions go through
    payments.services.fraud_alert."""

    class Status(models.TextChoices):
        # Stored values predate the review workflow and are kept, so no row moves; the
        # labels say what a resolution means. Forward only: open -> investigating ->
        # confirmed / dismissed, or open -> confirmed / dismissed
        # (payments.services.fraud_alert.ALLOWED_TRANSITIONS).
        OPEN = "open", "Open"
        INVESTIGATING = "investigating", "Investigating"
        CONFIRMED = "confirmed", "Resolved: confirmed fraud"
        DISMISSED = "dismissed", "Resolved: false positive"

    class Source(models.TextChoices):
        EARLY_FRAUD_WARNING = "early_fraud_warning", "Stripe early fraud warning"
        STAFF = "staff", "Flagged by staff"
        RULE = "rule", "Our fraud rules"

    payment = models.ForeignKey(
        "payments.Payment", related_name="fraud_alerts", on_delete=models.PROTECT
    )
    source = models.CharField(max_length=32, choices=Source.choices)
    # Stripe's early fraud warning id (issfr_...); empty for staff flags.
    stripe_id = models.CharField(max_length=255, blank=True)
    fraud_type = models.CharField(max_length=64, blank=True, help_text="Stripe's fraud_type.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # Who resolved it (confirmed / dismissed), when, and why.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fraud_reviews",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    created = models.DateTimeField(help_text="When the warning was raised.")

    # --- Rule alerts (h/fraudrules; payments/fraud_rules.py writes these, source "rule") ----
    rule = models.CharField(max_length=32, choices=FraudRule.choices, blank=True)
    severity = models.CharField(max_length=16, choices=FraudSeverity.choices, blank=True)
    risk_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="0-100: the rule's weight times how far over its threshold.",
    )
    # What tripped the rule: counts, window, threshold, amounts with their currency.
    numbers = models.JSONField(default=dict, blank=True)
    # The cause, e.g. "customer:42" or "card:<fingerprint>": one unresolved alert per cause.
    cause_key = models.CharField(max_length=255, blank=True)
    customer = models.ForeignKey(
        "payments.Customer",
        related_name="fraud_alerts",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    # Every payment of the pattern, latest first (`payment` is the latest): a snapshot of the
    # evidence taken in the same INSERT as the alert (see payments/fraud_rules.py).
    payment_ids = models.JSONField(default=list, blank=True)
    # --- end of the rule alerts' fields --------------------------------------------------------

    # --- Review workflow (h/fraudreview): who owns the review and since when. ----------------
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fraud_alerts_assigned",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    investigating_since = models.DateTimeField(null=True, blank=True)
    # --- end of the review workflow block ----------------------------------------------------

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("review_fraudalert", "Can assign, investigate and resolve fraud alerts")]
        indexes = [
            models.Index(fields=["status", "-created"], name="fraud_status_created_idx"),
            # Rule alerts: earlier alerts of a cause (resolved ones included), and the filter.
            models.Index(fields=["rule", "cause_key"], name="fraud_rule_cause_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_id"],
                condition=~models.Q(stripe_id=""),
                name="fraud_alert_stripe_id_unique",
            ),
            # Rule alerts: never a second unresolved alert for the same cause, even from two
            # detection runs at once (their INSERTs are ON CONFLICT DO NOTHING).
            models.UniqueConstraint(
                fields=["rule", "cause_key"],
                condition=models.Q(status__in=UNRESOLVED_STATUSES) & ~models.Q(rule=""),
                name="fraud_alert_one_unresolved_per_cause",
            ),
        ]

    def __str__(self) -> str:
        # No related lookup: the title names the alert, the page shows its payment.
        return f"Fraud alert #{self.pk}"

    UNRESOLVED_STATUSES = frozenset({Status.OPEN, Status.INVESTIGATING})
    RESOLVED_STATUSES = frozenset({Status.CONFIRMED, Status.DISMISSED})

    @property
    def is_resolved(self) -> bool:
        return self.status in self.RESOLVED_STATUSES
