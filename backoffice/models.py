from django.conf import settings
from django.db import models


class AdminAction(models.Model):
    """The audit trail: one row per staff action, written in the same transaction as the
    change it describes (so a rolled-back change leaves no audit row, and vice versa)."""

    class Result(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="admin_actions",
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, help_text="app_label.model of the target.")
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units, if any.")
    currency = models.CharField(max_length=3, blank=True)
    reason = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.SUCCESS)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="adminaction_target_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_repr or self.target_id}"
