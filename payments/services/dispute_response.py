"""Answer a dispute from the back-office: stage evidence ("save", Stripe `submit=false`),
submit it to the bank for good, or accept (close) the dispute.

Each request is a DisputeResponse row (its own state and idempotency key); each staff action
also writes one AdminAction (backoffice.audit.audit_record), never edited afterwards.

Flow (DESIGN.md, "Out to Stripe"), the same as payments.services.payment_retry:
0. Before anything is stored or sent: the permission, and the evidence against Stripe's
   limits (payments.dispute_evidence: types by magic bytes, sizes, text lengths).
1. Under a row lock on the Dispute, then on its open response: check the dispute still takes
   this answer (needs a response, not past its deadline), write the response (`processing`,
   key `dispute_response:<pk>`, the exact evidence to send) and the audit row; commit.
2. Outside any transaction: upload the attached files (`<key>:file:<field>`), store their ids
   in the response's evidence and commit; then ONE dispute call (update or close) with the key.
3. Under the same locks: mirror Stripe's answer through payments.sync.upsert_disputes (the
   upsert the sync and webhooks use) and record the outcome on the response.

At most one response per dispute is open (processing, or unknown after a timeout / 5xx): a
click while its last attempt is younger than IN_FLIGHT_WINDOW is refused, so two submits at
once make one call. After that window the SAME response is sent again with the SAME key and
evidence, so Stripe answers the first outcome instead of acting twice. A response interrupted
before its dispute call (while uploading files) never reached the dispute: it is closed as
failed and a new one starts. A file upload with no answer may leave an unused file at Stripe;
that is harmless (files do nothing until a dispute names them). Lock order: Dispute, then
DisputeResponse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.formats import format_datetime
from payments import gateway, sync
from payments.dispute_evidence import (
    EVIDENCE_FIELDS,
    FIELD_LABELS,
    TEXT_FIELDS,
    EvidenceFile,
    evidence_errors,
    file_type,
)
from payments.exceptions import (
    GatewayError,
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
)
from payments.models import Dispute, DisputeResponse, Payment

PERM_RESPOND = "payments.respond_dispute"
AUDIT_ACTIONS = {
    DisputeResponse.Kind.SAVE: "dispute.evidence_save",
    DisputeResponse.Kind.SUBMIT: "dispute.evidence_submit",
    DisputeResponse.Kind.ACCEPT: "dispute.accept",
}
FILE_PURPOSE = "dispute_evidence"

# The statuses in which Stripe takes evidence or an acceptance. Once evidence is submitted
# the dispute is under review; a final status (won, lost, ...) takes nothing.
RESPONDABLE_STATUSES = frozenset(
    {Dispute.Status.NEEDS_RESPONSE, Dispute.Status.WARNING_NEEDS_RESPONSE}
)
SUBMITTED_STATUSES = frozenset({Dispute.Status.UNDER_REVIEW, Dispute.Status.WARNING_UNDER_REVIEW})

ERROR_NO_PERMISSION = "You do not have permission to respond to disputes."
ERROR_CLOSED = "This dispute is closed ({status}); it takes no evidence and cannot be accepted."
ERROR_SUBMITTED = (
    "Evidence for this dispute was already submitted ({status}); the bank is reviewing it."
)
ERROR_PAST_DUE = "The evidence deadline ({due}) has passed; Stripe no longer takes evidence."
ERROR_IN_FLIGHT = "A response to this dispute is already being sent; wait for its result."
ERROR_NOTHING_TO_SAVE = "Fill in at least one evidence field or attach a file."
ERROR_NOTHING_TO_SUBMIT = "There is no evidence to submit: save some first, or fill in the form."
ERROR_INVALID = "The evidence was not sent: {errors}"
ERROR_FILE_UPLOAD = "{label}: Stripe refused the file ({error}); nothing was sent to the dispute."
ERROR_INTERRUPTED = "Interrupted while uploading files, before the dispute was sent anything."
MESSAGE_SAVED = "Evidence saved in Stripe, not submitted ({count} field(s) staged)."
MESSAGE_SUBMITTED = "Evidence submitted to the bank; the dispute is now {status}."
MESSAGE_ACCEPTED = "Dispute accepted; it is now {status}."
MESSAGE_UNKNOWN = (
    "Stripe gave no clear answer; the request may have gone through. Trying again re-sends the "
    "same request with the same idempotency key, so Stripe cannot act on it twice."
)
MESSAGE_RESUMED = (
    "An earlier “{kind}” of this dispute had no answer from Stripe; it was sent again exactly "
    "as it was, and your new input was not sent. "
)

# An open response whose last attempt is younger than this is in flight (a double submit);
# an older one was interrupted and is re-sent with its own key.
IN_FLIGHT_WINDOW = timedelta(minutes=2)


class DisputeResponseNotAllowed(Exception):
    """A rule or Stripe said no. The message is safe to show to staff."""

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None) -> None:
        self.message = message
        # Per form field (evidence field name, or "__all__"), for validation failures.
        self.errors = errors or {}
        super().__init__(message)


@dataclass(frozen=True)
class DisputeResponseResult:
    succeeded: bool
    status: str  # the dispute's local status after the response
    message: str
    idempotency_key: str
    response_id: int
    audit_id: int
    resumed: bool  # an earlier unanswered response was re-sent instead of this one


def _state_error(dispute: Dispute, *, kind: str, now) -> str | None:
    """Why `dispute` cannot take a `kind` response now, or None."""
    status = dispute.status
    if status not in RESPONDABLE_STATUSES:
        label = dispute.get_status_display() or status
        if status in SUBMITTED_STATUSES:
            return ERROR_SUBMITTED.format(status=label.lower())
        return ERROR_CLOSED.format(status=label.lower())
    due_by = dispute.evidence_due_by
    # Accepting stays possible past the deadline: it only concedes what is already lost.
    if kind != DisputeResponse.Kind.ACCEPT and due_by and due_by <= now:
        return ERROR_PAST_DUE.format(due=format_datetime(due_by))
    return None


def _clean_text(text: dict[str, str] | None) -> dict[str, str]:
    """The non-empty text values, stripped: an empty field is left as Stripe has it."""
    return {
        field: value.strip() for field, value in (text or {}).items() if value and value.strip()
    }


def _staged(dispute: Dispute) -> dict[str, str]:
    """The evidence Stripe holds for `dispute` (as mirrored), non-empty known fields only."""
    return {
        field: value
        for field, value in (dispute.evidence or {}).items()
        if field in EVIDENCE_FIELDS and isinstance(value, str) and value
    }


def _validate(text: dict[str, str], files: list[EvidenceFile]) -> None:
    errors = evidence_errors(text, files)
    if errors:
        flat = " ".join(message for messages in errors.values() for message in messages)
        raise DisputeResponseNotAllowed(ERROR_INVALID.format(errors=flat), errors=errors)


def _start(
    *,
    dispute: Dispute,
    kind: str,
    text: dict[str, str],
    files: list[EvidenceFile],
    acting_user,
    client: ClientInfo | None,
) -> tuple[DisputeResponse, int, bool]:
    """Step 1: the response to send (a new one, or the unanswered open one), marked as an
    attempt in flight, and its audit row, committed. Returns (response, audit id, resumed)."""
    with transaction.atomic():
        locked = Dispute.objects.select_for_update().get(pk=dispute.pk)
        now = timezone.now()
        response = (
            DisputeResponse.objects.select_for_update()
            .filter(dispute=locked, status__in=DisputeResponse.OPEN_STATUSES)
            .first()
        )
        if response is not None:
            if response.last_attempt_at and response.last_attempt_at > now - IN_FLIGHT_WINDOW:
                raise DisputeResponseNotAllowed(ERROR_IN_FLIGHT)
            if not response.files_uploaded:
                # Its files' ids were never stored, so the dispute call was never made.
                response.status = DisputeResponse.Status.FAILED
                response.error = ERROR_INTERRUPTED
                response.finished_at = now
                response.save()
                response = None
        resumed = response is not None
        if response is None:
            error = _state_error(locked, kind=kind, now=now)
            if error:
                raise DisputeResponseNotAllowed(error)
            evidence: dict[str, str] = {}
            if kind == DisputeResponse.Kind.SUBMIT:
                # What staff confirmed (the staged evidence) is what the bank gets, plus
                # anything given with the submit itself.
                evidence = _staged(locked)
            if kind != DisputeResponse.Kind.ACCEPT:
                evidence.update(text)
                if not evidence and not files:
                    raise DisputeResponseNotAllowed(
                        ERROR_NOTHING_TO_SUBMIT
                        if kind == DisputeResponse.Kind.SUBMIT
                        else ERROR_NOTHING_TO_SAVE
                    )
                # Staged file fields hold file ids, not text: only the text is measured.
                _validate({k: v for k, v in evidence.items() if k in TEXT_FIELDS}, files)
            response = DisputeResponse.objects.create(
                dispute=locked,
                kind=kind,
                evidence=evidence,
                files_uploaded=not files,
                requested_by=acting_user if getattr(acting_user, "pk", None) else None,
            )
            # Derived from our row and committed before any Stripe call (DESIGN decision 3).
            response.idempotency_key = f"dispute_response:{response.pk}"
        response.status = DisputeResponse.Status.PROCESSING
        response.attempts += 1
        response.last_attempt_at = now
        response.save()
        audit = audit_record(
            acting_user=acting_user,
            action=AUDIT_ACTIONS[response.kind],
            target=locked,
            amount=locked.amount,
            currency=locked.currency,
            client=client,
            details={
                "dispute_response_id": response.pk,
                "idempotency_key": response.idempotency_key,
                "kind": response.kind,
                "fields": sorted(response.evidence),
                "files": [{"field": f.field, "filename": f.filename, "size": f.size} for f in files]
                if not resumed
                else [],
                "attempt": response.attempts,
                "resumed": resumed,
            },
        )
    return response, audit.pk, resumed


def _upload_files(response: DisputeResponse, files: list[EvidenceFile]) -> DisputeResponse:
    """Step 2a: upload the attached files and commit their ids into the response's evidence.
    Raises DisputeResponseNotAllowed (the response failed; the dispute was sent nothing)."""
    uploaded, evidence = [], {}
    for upload in files:
        try:
            stripe_file = gateway.stripe_file_create(
                content=upload.content,
                filename=upload.filename,
                purpose=FILE_PURPOSE,
                idempotency_key=f"{response.idempotency_key}:file:{upload.field}",
            )
        except GatewayError as exc:
            message = ERROR_FILE_UPLOAD.format(label=FIELD_LABELS[upload.field], error=exc.message)
            _finish(response, status=DisputeResponse.Status.FAILED, error=message)
            raise DisputeResponseNotAllowed(message) from exc
        evidence[upload.field] = stripe_file.id
        kind = file_type(upload.content)
        uploaded.append(
            {
                "field": upload.field,
                "id": stripe_file.id,
                "filename": upload.filename,
                "size": upload.size,
                "type": kind[0] if kind else "",
            }
        )
    with transaction.atomic():
        locked = DisputeResponse.objects.select_for_update().get(pk=response.pk)
        locked.evidence = {**locked.evidence, **evidence}
        locked.files = uploaded
        locked.files_uploaded = True
        locked.save()
    return locked


def _finish(
    response: DisputeResponse, *, status: str, answer=None, error: str = ""
) -> tuple[DisputeResponse, Dispute]:
    """Step 3: mirror Stripe's answer (if any) and record the outcome, unless a concurrent
    attempt of the same response recorded one already. Returns the rows as stored."""
    with transaction.atomic():
        # Payment, then dispute, then response: the order of every path that writes a
        # dispute (sync.upsert_disputes locks the payment first), so a webhook landing the same
        # dispute at this moment waits instead of deadlocking.
        payment_pk = Dispute.objects.values_list("payment_id", flat=True).get(
            pk=response.dispute_id
        )
        Payment.objects.select_for_update().filter(pk=payment_pk).values_list("pk").get()
        dispute = Dispute.objects.select_for_update().get(pk=response.dispute_id)
        locked = DisputeResponse.objects.select_for_update().get(pk=response.pk)
        if answer is not None:
            # The same upsert the sync and webhooks use; idempotent whoever comes first.
            sync.upsert_disputes([answer])
            dispute.refresh_from_db()
        if locked.is_open:
            locked.status = status
            locked.error = error
            if answer is not None:
                locked.stripe_status = answer.status
            if status not in DisputeResponse.OPEN_STATUSES:
                locked.finished_at = timezone.now()
            locked.save()
    return locked, dispute


def _respond(
    *,
    dispute: Dispute,
    kind: str,
    text: dict[str, str] | None,
    files: list[EvidenceFile] | None,
    acting_user,
    client: ClientInfo | None,
) -> DisputeResponseResult:
    if acting_user is None or not acting_user.has_perm(PERM_RESPOND):
        raise DisputeResponseNotAllowed(ERROR_NO_PERMISSION)
    text, files = _clean_text(text), list(files or [])
    # Checked before anything is stored or sent; the submit's merged evidence is checked
    # again in _start, under the lock, once the staged evidence is known.
    _validate(text, files)

    response, audit_id, resumed = _start(
        dispute=dispute, kind=kind, text=text, files=files, acting_user=acting_user, client=client
    )
    if not response.files_uploaded:
        response = _upload_files(response, files)

    # Outside any transaction: no row lock is held while Stripe thinks.
    try:
        if response.kind == DisputeResponse.Kind.ACCEPT:
            answer = gateway.stripe_dispute_close(
                dispute_id=dispute.stripe_id, idempotency_key=response.idempotency_key
            )
        else:
            answer = gateway.stripe_dispute_update(
                dispute_id=dispute.stripe_id,
                evidence=response.evidence,
                submit=response.kind == DisputeResponse.Kind.SUBMIT,
                idempotency_key=response.idempotency_key,
            )
    except (GatewayTimeout, GatewayServerError, IdempotencyConflict) as exc:
        # Unknown outcome (Stripe may have acted; a conflict means an earlier attempt with
        # this key is still running there): the response stays open, so the next click
        # re-sends the same key and Stripe answers the first outcome.
        response, after = _finish(
            response, status=DisputeResponse.Status.UNKNOWN, error=exc.message
        )
        message = MESSAGE_UNKNOWN
    except GatewayError as exc:
        # Refused (dispute closed meanwhile, past due, bad evidence ...): this response is over.
        _finish(response, status=DisputeResponse.Status.FAILED, error=exc.message)
        raise DisputeResponseNotAllowed(exc.message) from exc
    else:
        response, after = _finish(response, status=DisputeResponse.Status.SUCCEEDED, answer=answer)
        status = (after.get_status_display() or after.status).lower()
        if response.kind == DisputeResponse.Kind.ACCEPT:
            message = MESSAGE_ACCEPTED.format(status=status)
        elif response.kind == DisputeResponse.Kind.SUBMIT:
            message = MESSAGE_SUBMITTED.format(status=status)
        else:
            message = MESSAGE_SAVED.format(count=len(response.evidence))
    if resumed:
        message = MESSAGE_RESUMED.format(kind=response.get_kind_display().lower()) + message
    return DisputeResponseResult(
        succeeded=response.status == DisputeResponse.Status.SUCCEEDED and not resumed,
        status=after.status,
        message=message,
        idempotency_key=response.idempotency_key,
        response_id=response.pk,
        audit_id=audit_id,
        resumed=resumed,
    )


def dispute_evidence_save(
    *,
    dispute: Dispute,
    text: dict[str, str] | None = None,
    files: list[EvidenceFile] | None = None,
    acting_user,
    client: ClientInfo | None = None,
) -> DisputeResponseResult:
    """Stage evidence on the dispute (Stripe `submit=false`): text fields by Stripe's names,
    files uploaded first and named by their ids. Empty text fields are left as staged.

    Raises DisputeResponseNotAllowed (no permission, invalid evidence, nothing to save, the
    dispute no longer takes evidence, a response in flight, or Stripe refused)."""
    return _respond(
        dispute=dispute,
        kind=DisputeResponse.Kind.SAVE,
        text=text,
        files=files,
        acting_user=acting_user,
        client=client,
    )


def dispute_evidence_submit(
    *,
    dispute: Dispute,
    text: dict[str, str] | None = None,
    files: list[EvidenceFile] | None = None,
    acting_user,
    client: ClientInfo | None = None,
) -> DisputeResponseResult:
    """Submit the staged evidence (plus any `text` / `files` given now) to the bank, for
    good: Stripe takes no more evidence afterwards. Raises as dispute_evidence_save."""
    return _respond(
        dispute=dispute,
        kind=DisputeResponse.Kind.SUBMIT,
        text=text,
        files=files,
        acting_user=acting_user,
        client=client,
    )


def dispute_accept(
    *, dispute: Dispute, acting_user, client: ClientInfo | None = None
) -> DisputeResponseResult:
    """Accept the dispute (Stripe closes it and it is lost). Raises DisputeResponseNotAllowed
    (no permission, the dispute is closed or under review, a response in flight, or Stripe
    refused)."""
    return _respond(
        dispute=dispute,
        kind=DisputeResponse.Kind.ACCEPT,
        text=None,
        files=None,
        acting_user=acting_user,
        client=client,
    )
