from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

ERR_AUDIT_IMMUTABLE = "Audit rows are written once: an AdminAction cannot be {what}."


class AuditRowImmutable(Exception):
    """Someone tried to change or delete an audit row. The audit trail is append-only: record
    a new row (through backoffice.audit.audit_record) instead."""


class AdminActionQuerySet(models.QuerySet):
    """`.update()` and `.delete()` refuse, like the model's save() and delete().

    What Python cannot stop: raw SQL, `QuerySet._raw_delete` / `_update`, other programs.
    On PostgreSQL a trigger refuses those too (migration 0002_adminaction_append_only_trigger);
    SQLite has no such guard. Retention code leaves this table alone (management/
    maintenance.py's cleanup does), and a user with audit rows cannot be deleted (PROTECT)."""

    def update(self, **kwargs):
        raise AuditRowImmutable(ERR_AUDIT_IMMUTABLE.format(what="updated"))

    def delete(self):
        raise AuditRowImmutable(ERR_AUDIT_IMMUTABLE.format(what="deleted"))


class AdminAction(models.Model):
    """The audit trail: one row per staff action, written in the same transaction as the
    change it describes (so a rolled-back change leaves no audit row, and vice versa).

    Written once, by backoffice.audit.audit_record; never updated or deleted."""

    class Result(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        # Stopped before it started by the money-action guard (backoffice/guard.py): a rate
        # limit or a bulk action over BULK_ACTION_MAX_ROWS. Nothing changed.
        REFUSED = "refused", "Refused"

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
    target_repr = models.CharField("target", max_length=255, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units, if any.")
    currency = models.CharField(max_length=3, blank=True)
    reason = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.SUCCESS)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AdminActionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="adminaction_target_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_repr or self.target_id}"

    def save(self, *args, **kwargs):
        # A row read from the database (or saved once) is never written again; a new one is
        # always an INSERT, even with a pk set, so it cannot overwrite an existing row.
        if not self._state.adding:
            raise AuditRowImmutable(ERR_AUDIT_IMMUTABLE.format(what="updated"))
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditRowImmutable(ERR_AUDIT_IMMUTABLE.format(what="deleted"))


# --- The JSON API (backoffice/api/) ------------------------------------------------------------


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, *, now):
        """Tokens that still authenticate at `now`: not revoked, not expired."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class ApiToken(models.Model):
    """A staff member's key to the API (backoffice/api/tokens.py makes and revokes them).

    The secret is shown once, when the token is made; only its SHA-256 is stored, so a copy
    of the database authenticates nobody. `prefix` (the secret's first characters) is what
    the admin and the audit trail show to tell tokens apart. The token acts as its user with
    the user's Django permissions, never more; a `read_only` token never writes."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, help_text="What uses it, e.g. 'Metabase' or 'uptime probe'."
    )
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(
        default=False, help_text="Reads only, whatever its user may do (monitoring, BI tools)."
    )
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key` header, per user and key
    (backoffice/api/idempotency.py). While the first request runs, `status_code` is null and
    `locked_at` says since when; a repeat then gets 409 "in progress". Kept
    API_IDEMPOTENCY_TTL_HOURS, then deleted by `--cleanup-old-data`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # SHA-256 of method, path and body: the same key with another request is a conflict.
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    locked_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotencyrecord_user_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class ApiThrottleWindow(models.Model):
    """Write requests counted in one throttle window (backoffice/api/throttling.py) when the
    throttles count in the database: one row per scope, client and window, shared by every
    process and server. Rows past `expires_at` are deleted by `--cleanup-old-data`."""

    key = models.CharField(max_length=255, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class MoneyActionBucket(models.Model):
    """One staff member's token bucket for one limit of the money-action guard
    (backoffice/guard.py): `money:<user id>:actions` (MONEY_ACTIONS_PER_MINUTE) or
    `money:<user id>:amount:<currency>` (MONEY_ACTION_AMOUNT_PER_HOUR, minor units).

    `tokens` is what was left at `refilled_at` (Unix seconds, a float so SQLite and
    PostgreSQL do the refill arithmetic alike); the level now is that plus the refill since,
    capped at the limit. A missing row is a full bucket, so rows may be deleted any time."""

    key = models.CharField(max_length=255, unique=True)
    tokens = models.FloatField()
    refilled_at = models.FloatField()

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.2f}"
