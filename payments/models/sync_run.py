"""The Stripe sync's own state: its lease (JobLock), where each object type stands
(SyncState) and the record of every run (SyncRun). payments.sync_runs writes them; the
admin (payments/admin/sync_run.py), the dashboard and the overview read them.

These tables were created by the `management` app; payments/migrations/0007 took them over
with their rows (the tables were renamed, nothing was copied)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from backoffice.formats import format_datetime


class JobLockManager(models.Manager):
    def acquire(self, name: str, *, ttl: timedelta) -> str | None:
        """Take the lease `name` for `ttl`; its owner token, or None when someone holds it.

        A lease row with an expiry, not a held row lock: a sync runs for minutes and must
        not keep a transaction open (on SQLite that would block every writer). A crashed
        holder's lease expires and the next caller takes it over. Works the same on SQLite
        and PostgreSQL: the unique name decides between racing callers."""
        now = timezone.now()
        token = uuid.uuid4().hex
        with transaction.atomic():
            self.filter(name=name, expires_at__lt=now).delete()
        try:
            with transaction.atomic():
                self.create(name=name, owner=token, acquired_at=now, expires_at=now + ttl)
        except IntegrityError:
            return None
        return token

    def renew(self, name: str, token: str, *, ttl: timedelta) -> bool:
        """Extend our lease; False when it was lost (expired and taken over)."""
        return bool(self.filter(name=name, owner=token).update(expires_at=timezone.now() + ttl))

    def release(self, name: str, token: str) -> None:
        self.filter(name=name, owner=token).delete()


class JobLock(models.Model):
    """One row while a job holds its lease (e.g. `stripe-sync`)."""

    name = models.CharField(max_length=100, unique=True)
    owner = models.CharField(max_length=64)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    objects = JobLockManager()

    def __str__(self) -> str:
        return f"{self.name} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class SyncObjectType(models.TextChoices):
    # In the order a run syncs them: parents before children.
    CUSTOMER = "customer", "Customers"
    PAYMENT_METHOD = "payment_method", "Payment methods"
    PAYMENT_INTENT = "payment_intent", "Payment intents"
    REFUND = "refund", "Refunds"
    DISPUTE = "dispute", "Disputes"
    TRANSFER = "transfer", "Transfers"
    PROMOTION_CODE = "promotion_code", "Promotion codes"
    SUBSCRIPTION = "subscription", "Subscriptions"


class SyncState(models.Model):
    """Where the Stripe sync stands for one object type.

    `watermark`: the newest Stripe `created` fully synced; the next run lists objects created
    after watermark - overlap. While a pass is under way, `cursor` is the last object id of
    the last committed page, with the pass's lower bound and newest `created` seen, so that a
    run that failed mid-way resumes after that page instead of starting over."""

    object_type = models.CharField(max_length=32, choices=SyncObjectType.choices, unique=True)
    watermark = models.DateTimeField(null=True, blank=True)
    cursor = models.CharField(max_length=255, blank=True)
    pass_floor = models.DateTimeField(null=True, blank=True)
    pass_high_water = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["object_type"]

    def __str__(self) -> str:
        watermark = format_datetime(self.watermark) if self.watermark else "never synced"
        return f"{self.get_object_type_display()}: {watermark}"


class SyncRun(models.Model):
    """One run of the Stripe sync, whoever started it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run held the lock)"

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental", "Incremental"
        FULL = "full", "Full backfill"
        SINCE = "since", "Window (--since)"

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"
        ADMIN = "admin", "Admin"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.INCREMENTAL)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    since = models.DateField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField("Duration (ms)", null=True, blank=True)
    # {"payment_intent": {"created": 3, "updated": 1, "unchanged": 96, "skipped": 0}, ...}
    counts = models.JSONField(default=dict, blank=True)
    objects_changed = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField("API calls", default=0)
    api_retries = models.PositiveIntegerField("API retries", default=0)
    pages = models.PositiveIntegerField(default=0)
    # How each object type's pass ended; one failing type does not stop the others:
    # {"customer": {"status": "succeeded", "error": ""},
    #  "refund": {"status": "failed", "error": "GatewayServerError: ..."}, ...}
    # A type missing here did not finish: the run stopped at or before it (lost lease, a bug).
    outcomes = models.JSONField(default=dict, blank=True)
    # The run's error: every failed type's, "; "-separated, in the order they ran.
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="syncrun_started_idx"),
            models.Index(fields=["status", "-started_at"], name="syncrun_status_started_idx"),
        ]

    def __str__(self) -> str:
        return f"Stripe sync #{self.pk} ({self.status})"


def sync_run_lock_ttl() -> timedelta:
    """A run renews its lease after every page; a holder silent this long has died."""
    return timedelta(minutes=10)
