"""`Idempotency-Key` on POST: a repeat of a request gets the first answer, not a second effect.

Decorate a POST handler (a viewset action or `create`) with `@idempotent`. With the header:

- first use of (user, key): an IdempotencyRecord is INSERTed and committed *before* the
  handler runs, so a concurrent repeat finds it; the handler's answer (any status below 500)
  is stored on it and returned;
- a repeat with the same method, path and body: the stored answer, with the header
  `Idempotent-Replayed: true` (the service does not run again);
- a repeat with another method, path or body: 409 `idempotency_key_reused`;
- a repeat while the first still runs: 409 `idempotency_in_progress` with Retry-After; the
  unique constraint (user, key) decides which of two concurrent first uses runs. A first use
  still unfinished after API_IDEMPOTENCY_LEASE_SECONDS is a crashed worker: the repeat takes
  the record over (a conditional UPDATE: one taker) and runs the handler. The services are
  safe to run again (their own row locks and Stripe idempotency keys), so that is the same
  as a client retrying without a key.

An answer of 500 or above, or an exception the API does not answer (a bug), deletes the
record: the request did not complete, so a retry with the same key runs it again.

Keys are per user (two users may pick the same key) and kept API_IDEMPOTENCY_TTL_HOURS;
`idempotency_records_cleanup` (run by `manage_payments --cleanup-old-data`) deletes older
ones. A key reused after that runs the request again, as at Stripe."""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from backoffice.models import IdempotencyRecord

from .errors import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

ERR_BAD_KEY = "The Idempotency-Key header must be 1 to 255 printable ASCII characters."
ERR_KEY_REUSED = (
    "This Idempotency-Key was used with another request (method, path or body); use a new "
    "key for a new request."
)
ERR_IN_PROGRESS = "A request with this Idempotency-Key is still running; retry shortly."
IN_PROGRESS_RETRY_AFTER_SECONDS = 1


def request_fingerprint(request) -> str:
    """SHA-256 of the method, the path and the body. A multipart body (file uploads, e.g.
    dispute evidence) is hashed from its parsed fields and files instead: its raw bytes
    differ per send (the boundary), and reading them whole would refuse a large upload."""
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.path.encode())
    digest.update(b"\0")
    if (request.content_type or "").startswith("multipart/"):
        _update_with_parts(digest, request.data)
    else:
        digest.update(request.body)
    return digest.hexdigest()


def _update_with_parts(digest, data) -> None:
    for name in sorted(data.keys()):
        values = data.getlist(name) if hasattr(data, "getlist") else [data[name]]
        for value in values:
            digest.update(name.encode() + b"\0")
            if hasattr(value, "chunks"):
                digest.update(f"{getattr(value, 'name', '')}\0{value.size}\0".encode())
                for chunk in value.chunks():
                    digest.update(chunk)
                value.seek(0)  # the handler reads the file again
            else:
                digest.update(str(value).encode())
            digest.update(b"\0")


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(32 <= ord(char) < 127 for char in key)


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body, status=record.status_code)
    response[REPLAYED_HEADER] = "true"
    return response


def _in_progress() -> ApiError:
    error = ApiError("idempotency_in_progress", ERR_IN_PROGRESS, 409)
    error.wait = IN_PROGRESS_RETRY_AFTER_SECONDS
    return error


def _claim(request, key: str) -> IdempotencyRecord | Response:
    """The record this request now owns, or the answer to give instead (a replay)."""
    fingerprint = request_fingerprint(request)
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user=request.user,
                key=key,
                method=request.method,
                path=request.path[:500],
                request_hash=fingerprint,
                locked_at=now,
            )
    except IntegrityError:
        pass
    record = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
    if record is None:
        # Deleted between our INSERT and this read (a failed first use): one more try.
        raise _in_progress()
    if record.request_hash != fingerprint:
        raise ApiError("idempotency_key_reused", ERR_KEY_REUSED, 409)
    if record.status_code is not None:
        return _replay(record)
    lease = timedelta(seconds=settings.API_IDEMPOTENCY_LEASE_SECONDS)
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk,
        status_code__isnull=True,
        locked_at=record.locked_at,
        locked_at__lt=now - lease,
    ).update(locked_at=now)
    if not taken:
        raise _in_progress()
    record.locked_at = now
    return record


def idempotent(handler):
    """Decorator for a POST handler `(self, request, *args, **kwargs)` of an APIView."""

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(self, request, *args, **kwargs)
        if not _valid_key(key):
            raise ApiError("invalid_idempotency_key", ERR_BAD_KEY, 400)
        claimed = _claim(request, key)
        if isinstance(claimed, Response):
            return claimed
        try:
            try:
                response = handler(self, request, *args, **kwargs)
            except Exception as exc:
                # An error the API answers (a refusal, a conflict) is the request's answer
                # too, and replays like any other; handle_exception re-raises the rest.
                # Except one that did nothing and asks for the same request later (a rate
                # limit, a step-up: ApiError.stored False), as Stripe keeps no 429.
                stored = getattr(exc, "stored", True)
                response = self.handle_exception(exc)
                if not stored:
                    IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
                    return response
        except BaseException:
            IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
            raise
        if response.status_code >= 500 or not isinstance(response, Response):
            # Not completed, or not an answer we can store and replay (a file): not kept.
            IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
            return response
        IdempotencyRecord.objects.filter(pk=claimed.pk).update(
            status_code=response.status_code, response_body=response.data
        )
        return response

    return wrapper


def idempotency_records_cleanup(*, now=None) -> int:
    """Delete records older than API_IDEMPOTENCY_TTL_HOURS; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
