from django.db import models


class FraudRuleFailure(models.Model):
    """A fraud rule that raised instead of answering (payments/fraud_rules.py). The pass that
    ran it carried on with the other rules, and a payment event never fails because of it:
    the error is logged and kept here, counted in `manage_payments`' overview, and the
    hourly `--detect-fraud` run exits 1 while a rule fails."""

    class Trigger(models.TextChoices):
        EVENT = "event", "Payment event"
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"

    rule = models.CharField(max_length=32)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="fraud_rule_failure_at_idx")]

    def __str__(self) -> str:
        return f"{self.rule} failed ({self.trigger})"
