from django.conf import settings
from django.db import models

from .base import TimestampedModel


class DisputeResponse(TimestampedModel):
    """One staff answer to a dispute sent to Stripe (save evidence, submit it, or accept the
    dispute), and where it stands.

    payments.services.dispute_response moves it; each request also leaves one AdminAction.
    The idempotency key and the exact evidence sent are committed before the first Stripe call,
    so an interrupted or unanswered request is sent again identically (Stripe replays the
    first outcome) instead of as a new request. At most one response per dispute is open:
    the service checks it under the dispute's row lock, and a partial unique index makes the
    database refuse a second one whatever the code does.
    """

    class Kind(models.TextChoices):
        SAVE = "save", "Save evidence"
        SUBMIT = "submit", "Submit evidence"
        ACCEPT = "accept", "Accept dispute"

    class Status(models.TextChoices):
        # The key is committed; files or the dispute call are in flight (or the worker died).
        PROCESSING = "processing", "Sent to Stripe"
        # Stripe timed out or answered 5xx: it MAY have acted. Resumed with the same key.
        UNKNOWN = "unknown", "Outcome unknown"
        SUCCEEDED = "succeeded", "Succeeded"
        # Stripe refused the request (or a file upload), nothing changed on the dispute.
        FAILED = "failed", "Refused by Stripe"

    OPEN_STATUSES = (Status.PROCESSING, Status.UNKNOWN)

    dispute = models.ForeignKey(
        "payments.Dispute", related_name="responses", on_delete=models.PROTECT
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    # `dispute_response:<pk>`, derived from this row and committed before the first Stripe
    # call (DESIGN decision 3); file uploads use `<key>:file:<field>`.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # The evidence hash sent with the update (text, and file ids once uploaded); empty for
    # an accept. A resumed attempt sends exactly this again.
    evidence = models.JSONField(default=dict, blank=True)
    # True once every attached file is uploaded and its id is in `evidence`: only then is the
    # dispute call made, so a response interrupted before it never reached the dispute.
    files_uploaded = models.BooleanField(default=False)
    files = models.JSONField(
        default=list, blank=True, help_text="Uploaded files: field, id, filename, size, type."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dispute_responses",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Dispute calls sent to Stripe.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stripe_status = models.CharField(
        max_length=64, blank=True, help_text="The dispute's status in Stripe's answer."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["dispute", "-created_at"], name="dispute_response_dispute_idx")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dispute"],
                condition=models.Q(status__in=["processing", "unknown"]),
                name="dispute_response_one_open_per_dispute",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.dispute_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
