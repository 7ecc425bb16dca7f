from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone


class WebhookEvent(models.Model):
    """One Stripe event as delivered to /stripe/webhook/, stored once (unique by Stripe's event
    id) before anything acts on it, so that nothing Stripe tells us is ever lost or applied
    twice."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    # Statuses after which the event needs nothing more (a replay may still re-run it).
    DONE_STATUSES = frozenset({Status.PROCESSED, Status.IGNORED})

    stripe_id = models.CharField("Stripe event id", max_length=255, unique=True)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=32, blank=True)
    livemode = models.BooleanField(default=False)
    # data.object.id: the payment intent / charge / refund / dispute / customer the event is
    # about, so that a payment's page can list its events.
    object_id = models.CharField(max_length=255, blank=True)
    # When Stripe created the event (its `created`, whole seconds). Handlers do not order by
    # it (they re-read the object); it orders a payment's events on its page.
    created = models.DateTimeField(help_text="When Stripe created the event.")
    payload = models.JSONField(help_text="The event exactly as Stripe signed it.")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts so far.")
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds the last attempt took."
    )
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a retrying event is tried again."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            # The default ordering, and each filter followed by it (a page is an index scan).
            models.Index(fields=["-received_at", "-id"], name="webhook_received_idx"),
            models.Index(
                fields=["status", "-received_at", "-id"], name="webhook_status_received_idx"
            ),
            models.Index(fields=["type", "-received_at", "-id"], name="webhook_type_received_idx"),
            # A payment's (or refund's ...) events, oldest first.
            models.Index(fields=["object_id", "created"], name="webhook_object_created_idx"),
            # webhook_health(): average processing time over the last 24 h.
            models.Index(fields=["processed_at"], name="webhook_processed_idx"),
            # Search: Stripe ids ignoring case, UPPER(id) = UPPER(term) (backoffice/changelist.py).
            models.Index(Upper("stripe_id"), name="webhook_stripe_id_upper_idx"),
            models.Index(Upper("object_id"), name="webhook_object_id_upper_idx"),
        ]
        permissions = [
            ("replay_webhookevent", "Can replay webhook events"),
            # Without it, payloads are shown with names, e-mails, addresses and phones masked
            # (backoffice/redaction.py): the admin's event page and the API's event detail.
            ("view_webhook_payload", "Can view webhook payloads unmasked (personal data)"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
